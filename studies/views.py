"""Participant-facing REST API: thin views that load the participant or study, let the
permissions and serializers judge the request, and call `studies.assignment`.

Participants authenticate with the unguessable token in the URL (no session, so no
CSRF); researchers use the admin.

Every body is produced by an output serializer of `studies.serializers`, and each view's
`extend_schema(responses=...)` names that same serializer per status code, so the schema
cannot say one thing while the view sends another (tests/test_studies_schema.py
validates real responses against it). The errors DRF raises and renders itself (400,
403, 404, 429) have the shape `ErrorSerializer` documents, `{"detail": why}`, or a
validation error's field-by-field messages. The one exception to "the serializer builds
the bytes" is the embedded motion: see `EncodedMotionField` and `json_response`.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from functools import lru_cache

from django.core.cache import cache
from django.http import HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from attacks.models import AdversarialSample, Dataset

from studies import assignment

from studies import permissions

from studies.core import playback
from studies.throttling import ThrottledEarly
from studies.models import MotionHandle, Participant, SeriesParticipant, Study, StudySeries, Trial
from studies.core.participation_config import COMPLETED, SCREENED_OUT, consent_version, outcome_exit
from studies.core.payloads import encode_handle
from studies.serializers import (AnswerConflictSerializer, AnswerResultSerializer, AnswerSerializer,
                                 CompletionRefusedSerializer, CompletionSerializer, EncodedJSON,
                                 EncodedMotionSerializer, ErrorSerializer, NextTrialSerializer,
                                 ParticipationSerializer, SeriesParticipationSerializer, SeriesPublicSerializer,
                                 StartParticipationSerializer, StudyPublicSerializer)

MOTION_MAX_AGE = 7 * 24 * 3600

# The errors DRF raises and renders itself, declared per view with `errors(...)`.
ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="A body that is not JSON (`detail`), or per field "
                                                          "what is wrong with it (the input serializer's errors)"),
    403: OpenApiResponse(ErrorSerializer, description="Refused by a permission (`detail` says which rule)"),
    404: OpenApiResponse(ErrorSerializer, description="No such study, series, participation, trial or motion"),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited (see the Retry-After header)"),
}


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}


def respond(serializer_class, data, code: int = status.HTTP_200_OK) -> ApiResponse:
    """`data` as `serializer_class` renders it: the body the schema declares for `code`."""
    return ApiResponse(serializer_class(data).data, status=code)


class ParticipantView(ThrottledEarly, APIView):
    """Base: no session authentication, JSON only, `self.participant` from the URL token."""

    authentication_classes = []
    parser_classes = [JSONParser]

    def initial(self, request, *args, **kwargs):
        self.check_throttles(request)
        # One query: the participation, its study and its progress (trials, answers, the
        # current trial's position), so no view counts again.
        self.participant = assignment.with_progress(Participant.objects.select_related("study")) \
            .filter(token=kwargs.get("token")).order_by("pk").first()  # a unique token: no join ordering
        if self.participant is None:
            raise NotFound("No participation with this token.")
        self.study = self.participant.study
        if self.participant.status == Participant.ABANDONED and self.study.status == Study.OPEN:
            assignment.reactivate(self.participant)
        elif self.study.status == Study.CLOSING:
            # No newcomer comes to release the timed-out ones, and they must not keep the
            # study closing for ever: any returning participant's request does it.
            assignment.release_abandoned(self.study)
            self.participant.refresh_from_db(fields=["status"])
        super().initial(request, *args, **kwargs)

    def progress(self):
        return progress_of(self.participant)


class StudyDetail(ThrottledEarly, APIView):
    authentication_classes = []

    @extend_schema(responses={200: StudyPublicSerializer, **errors(404, 429)},
                   summary="What a participant sees before consenting")
    def get(self, request, slug):
        study = get_object_or_404(Study, slug=slug)
        config = study.config
        return respond(StudyPublicSerializer, {
            "slug": study.slug, "name": study.name, "status": study.status, **consent_facts(config),
            "instructions": config["instructions"],
            "trials": config["trials_per_participant"], "practice_trials": config["practice_trials"],
            "playback": playback_settings(config),
            "start_url": reverse("studies:start", args=[study.slug])})


class StartParticipation(ThrottledEarly, APIView):
    """Consent and start, or resume. Newcomers need an open study with room; a returning
    participant (same SESSION_ID, or the resume token the browser kept) may resume in a
    full or closing study. A PROLIFIC_PID alone resumes nothing (409)."""

    authentication_classes = []
    parser_classes = [JSONParser]
    permission_classes = [permissions.StudyIsOpen, permissions.StaffOnlyTest]
    newcomer_permissions = [permissions.StudyTakesNewcomers, permissions.StudyHasRoom]
    state_serializer = ParticipationSerializer  # what `resume_or_start` returns

    def initial(self, request, *args, **kwargs):
        self.check_throttles(request)
        self.is_test = isinstance(request.data, dict) and request.data.get("test") is True
        self.load(kwargs["slug"])
        super().initial(request, *args, **kwargs)

    def load(self, slug):
        self.study = Study.objects.filter(slug=slug).first()
        if self.study is None:
            raise NotFound("No such study.")
        # Before StudyHasRoom counts: participants past the timeout must not keep a full
        # study closed to newcomers (nothing else would ever release them).
        assignment.release_abandoned(self.study)
        self.owner_config = self.study.config

    @extend_schema(request=StartParticipationSerializer,
                   responses={201: ParticipationSerializer, 200: ParticipationSerializer,
                              409: OpenApiResponse(ErrorSerializer, description="the PROLIFIC_PID has a "
                                                   "participation this request does not prove to continue"),
                              **errors(400, 403, 404, 429)},
                   summary="Give consent and start (or resume, with the same SESSION_ID or resume token) a "
                           "participation")
    def post(self, request, slug):
        data = StartParticipationSerializer(data=request.data,
                                            context={"questionnaire": self.owner_config["questionnaire"]})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        ids = {"prolific_pid": v["PROLIFIC_PID"], "prolific_study_id": v["STUDY_ID"],
               "prolific_session_id": v["SESSION_ID"]}
        if self.is_test:  # a preview never takes (or resumes) a real participant's external ids
            ids = {k: "" for k in ids}
        try:
            body, created = self.resume_or_start(data, ids)
        except (assignment.ParticipationConflict, assignment.SeriesError) as e:
            return respond(ErrorSerializer, {"detail": str(e)}, status.HTTP_409_CONFLICT)
        return respond(self.state_serializer, body, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def resume_or_start(self, data, ids) -> tuple[dict, bool]:
        v = data.validated_data
        existing = assignment.existing_participation(self.study.participants, ids["prolific_pid"],
                                                     ids["prolific_session_id"], v["resume_token"])
        if existing is not None:
            return participation_state(existing), False
        self.check_newcomer(data)
        participant, created = assignment.start_participation(
            self.study, **ids, browser=v["browser"], screen=v["screen"], resume_token=v["resume_token"],
            is_test=self.is_test, questionnaire=v["questionnaire"])
        return participation_state(participant), created

    def check_newcomer(self, data):
        """A newcomer's start: the study takes newcomers, has room, and every required
        question is answered (a returning participant is not asked again)."""
        for permission in self.newcomer_permissions:
            if not permission().has_permission(self.request, self):
                self.permission_denied(self.request, message=permission.message)
        data.require_answers()


class ParticipationDetail(ParticipantView):
    @extend_schema(responses={200: ParticipationSerializer, **errors(404, 429)}, summary="Progress of a participation")
    def get(self, request, token):
        return respond(ParticipationSerializer, participation_state(self.participant))

    @extend_schema(request=None, responses={204: None, **errors(404, 429)},
                   summary="Withdraw: delete this participation and its answers (a series' whole participation)")
    def delete(self, request, token):
        assignment.withdraw(self.participant)
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


class NextTrial(ParticipantView):
    permission_classes = [permissions.StudyIsOpen, permissions.ParticipationIsLive]

    @extend_schema(
        responses={200: NextTrialSerializer, **errors(403, 404, 429)},
        parameters=[OpenApiParameter("embed", str, description="'0' to leave the motion data out (fetch the "
                                                               "cacheable motion URLs instead)")],
        summary="The first unanswered trial: what to show and ask (a refreshed page resumes here)")
    def get(self, request, token):
        assignment.touch(self.participant, config=self.study.config)
        trial = assignment.current_trial(self.participant)
        if trial is None:
            return respond(NextTrialSerializer,
                           {"done": True, "complete_url": reverse("studies:complete", args=[token])})
        embed = request.query_params.get("embed", "1") != "0"
        payload = trial_payload(trial, self.study, self.participant.num_trials, embed)
        assignment.mark_served(trial, payload["playback"])
        # The embedded motions go out as the cache holds them (never decoded and encoded again).
        return json_response(NextTrialSerializer({"done": False, "trial": payload}).data)


class SubmitAnswer(ParticipantView):
    permission_classes = [permissions.StudyIsOpen, permissions.ParticipationIsLive,
                          permissions.OwnsTrial, permissions.TrialReached]

    @extend_schema(request=AnswerSerializer,
                   responses={201: AnswerResultSerializer, 200: AnswerResultSerializer,
                              409: OpenApiResponse(AnswerConflictSerializer, description="already answered "
                                                   "differently: the stored answer is kept"),
                              **errors(400, 403, 404, 429)},
                   summary="Store the answer to one trial (a repeat returns the stored answer)")
    def post(self, request, token):
        key = request.data.get("trial") if isinstance(request.data, dict) else None
        trial = Trial.objects.select_related("response").filter(key=str(key)).first() if key else None
        if trial is None:
            AnswerSerializer(data=request.data).is_valid(raise_exception=True)
            raise NotFound("No such trial.")
        self.current_position = self.participant.current_position  # TrialReached
        self.check_object_permissions(request, trial)
        data = AnswerSerializer(data=request.data, context={"trial": trial})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        response, created = assignment.store_answer(self.participant, trial, v["answer"], v["response_time_ms"],
                                                    v["playback"])
        assignment.touch(self.participant, config=self.study.config)
        answered, total = self.progress()
        # Counted before this answer was stored; a repeat (maybe racing its twin) counts again.
        answered = answered + 1 if created else self.participant.responses.count()
        body = {"trial": trial.key, "answer": response.answer, "duplicate": not created,
                "remaining": total - answered}
        if trial.is_practice:
            body["feedback"] = {"correct": response.is_correct,
                                "expected": trial.correct or None}
        if not created and response.answer != v["answer"]:
            body["detail"] = "This trial was already answered; the first answer is kept."
            return respond(AnswerConflictSerializer, body, status.HTTP_409_CONFLICT)
        return respond(AnswerResultSerializer, body, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CompleteParticipation(ParticipantView):
    """The outcome's code and redirect (completed, screened out, or timed out for an
    abandoned participation that can no longer continue), or in a series the next study."""

    @extend_schema(request=None, responses={200: CompletionSerializer,
                                            409: OpenApiResponse(CompletionRefusedSerializer,
                                                                 description="trials still unanswered, or the "
                                                                             "series' next study is not running"),
                                            **errors(404, 429)},
                   summary="Finish: the outcome's completion code and redirect, once every answer is stored")
    def post(self, request, token):
        answered, total = self.progress()
        if answered < total and self.participant.status != Participant.ABANDONED:
            return respond(CompletionRefusedSerializer, {"detail": f"{total - answered} trials are still unanswered.",
                                                         "remaining": total - answered}, status.HTTP_409_CONFLICT)
        if answered >= total:
            assignment.complete(self.participant)
        # Still abandoned here means the study no longer takes it back: it timed out.
        try:
            return respond(CompletionSerializer, completion_body(self.participant))
        except assignment.SeriesError as e:
            return respond(CompletionRefusedSerializer, {"detail": str(e)}, status.HTTP_409_CONFLICT)


class MotionDetail(ThrottledEarly, APIView):
    """One motion by its opaque key; immutable, so cached by browsers and proxies.

    The body is the cached encoded JSON text itself (`motion_json`), the same bytes a
    trial embeds: the exception to serializing through the output serializer, for the
    same reason (`EncodedMotionField`); `EncodedMotionSerializer` declares it and the
    schema test validates it."""

    authentication_classes = []

    @extend_schema(responses={200: EncodedMotionSerializer,
                              304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)"),
                              **errors(404, 429)},
                   summary="A motion to play, by opaque key (cacheable, ETag)")
    def get(self, request, key):
        etag = f'"{hashlib.sha256(key.encode()).hexdigest()[:20]}"'
        if request.headers.get("If-None-Match") == etag:
            response = HttpResponseNotModified()
        else:
            body = motion_json(key)
            if body is None:
                raise NotFound("No such motion.")
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = f"public, max-age={MOTION_MAX_AGE}, immutable"
        return response


def motion_json(key: str) -> str | None:
    """Encoded motion JSON for a handle key, memoised in Django's cache: each view on its
    own quantisation grid, a catch trial's broken view broken (`payloads.encode_handle`).
    A handle's motion never changes, so the trial payload keeps in-process copies too
    (`_motion_body`, `_motion_shape`)."""
    # v2: per-view grids; bodies cached before them (identical sensitivity pairs) are not reused.
    cache_key = f"studies:motion:v2:{key}"
    body = cache.get(cache_key)
    if body is None:
        handle = MotionHandle.objects.select_related("sample", "study").filter(key=key).first()
        if handle is None:
            return None
        body = json.dumps(encode_handle(handle), separators=(",", ":"))
        cache.set(cache_key, body, timeout=MOTION_MAX_AGE)
    return body


@lru_cache(maxsize=8192)
def _motion_shape(key: str) -> tuple[int, float]:
    """(frames, fps) of a handle's motion, for the playback plan (immutable, tiny)."""
    motion = json.loads(_motion_body(key))
    return motion["shape"][1], motion["fps"]


@lru_cache(maxsize=256)  # ~30 KB each: a few MB per process, the shared cache behind it
def _motion_body(key: str) -> str:
    body = motion_json(key)
    if body is None:  # raised, so not memoised: a handle made later is found then
        raise LookupError(f"no motion handle {key!r}")
    return body


def json_response(data, status: int = 200) -> HttpResponse:
    """`data` as a JSON response (compact, UTF-8, as DRF renders it), with every
    `EncodedJSON` inside it spliced in as it is instead of decoded and encoded again.

    `data` is an output serializer's `.data` (the next trial's), whose
    `EncodedMotionField`s passed their `EncodedJSON` through: the serializer decides
    every key and value, this only writes the motions' bytes where it left them."""
    texts = []
    marker = secrets.token_hex(8)  # unguessable, so no string in `data` can collide with it

    def placeholder(obj):
        if not isinstance(obj, EncodedJSON):
            raise TypeError(f"{type(obj).__name__} is not JSON serializable")
        texts.append(obj.text)
        return f"{marker}:{len(texts) - 1}"

    body = json.dumps(data, default=placeholder, ensure_ascii=False, separators=(",", ":"))
    for i, text in enumerate(texts):
        body = body.replace(f'"{marker}:{i}"', text, 1)
    return HttpResponse(body.encode(), status=status, content_type="application/json")


@lru_cache(maxsize=4096)
def _dataset_of_sample(sample_id: int) -> int:
    return AdversarialSample.objects.filter(pk=sample_id).values_list("clip__dataset_id", flat=True).get()


@lru_cache(maxsize=64)
def _skeleton_facts(dataset_id: int) -> dict:
    skeleton = Dataset.objects.get(pk=dataset_id).get_skeleton()
    return {"num_joints": len(skeleton.joints), "bones": [list(b) for b in skeleton.bones], "up": "y"}


def playback_settings(config: dict) -> dict:
    """The study-wide settings (the per-trial schedule comes from `studies.core.playback.plan`)."""
    return {"seconds": config["playback_seconds"], "repeats": config["repeats"],
            "slow_motion": config["slow_motion"], "pause_seconds": config["repeat_pause_seconds"]}


def trial_payload(trial: Trial, study: Study, total: int, embed: bool) -> dict:
    """What the browser gets for a trial, for `TrialSerializer`. Embedded motions are
    `EncodedJSON` (render the serializer's data with `json_response`)."""
    motions = []
    shapes = []
    for side, handle in (("left", trial.left), ("right", trial.right)):
        if handle is None:
            continue
        ref = {"side": side, "key": handle.key, "url": reverse("studies:motion", args=[handle.key])}
        shapes.append(_motion_shape(handle.key))
        if embed:
            ref["motion"] = EncodedJSON(_motion_body(handle.key))
        motions.append(ref)
    dataset_id = _dataset_of_sample(trial.left.sample_id)
    protocol = study.protocol
    return {"trial": trial.key, "position": trial.position, "total": total, "is_practice": trial.is_practice,
            "prompt": protocol.PROMPT,
            "options": [{"value": o["value"], "text": o["text"]} for o in trial.options],
            "options_after_playback": getattr(protocol, "OPTIONS_AFTER_PLAYBACK", False),
            "motions": motions, "skeleton": _skeleton_facts(dataset_id),
            "playback": playback.plan(shapes, study.config)}


def progress_of(participant: Participant) -> tuple[int, int]:
    """(answered, total) of a participation: what `assignment.with_progress` annotated,
    else counted."""
    if hasattr(participant, "num_trials"):
        return participant.num_answered, participant.num_trials
    return participant.responses.count(), participant.trials.count()


def participation_state(participant: Participant) -> dict:
    answered, total = progress_of(participant)
    return {"token": participant.token, "status": participant.status, "is_test": participant.is_test,
            "answered": answered, "total": total, "next_url": reverse("studies:next", args=[participant.token])}


def consent_facts(config: dict) -> dict:
    return {"consent_text": config["consent_text"], "consent_version": consent_version(config),
            "questionnaire": config["questionnaire"]}


def completion_body(participant: Participant) -> dict:
    """What a finished participation leaves with. In a series the study's own code and
    debrief are withheld (a debrief would tell the next study's answers away): the person
    goes on to the next study, and only the series' end gives the series' code."""
    outcome = assignment.outcome(participant)
    sp = participant.series_participant
    if sp is None:
        config = participant.study.config
        return {**outcome_exit(config, outcome), "debrief_text": config["debrief_text"]}
    progress = series_progress(sp)
    if progress["status"] == SeriesParticipant.ACTIVE and outcome == COMPLETED:
        return {"outcome": outcome, "completion_code": "", "redirect_url": "", "debrief_text": "",
                "series": progress}
    config = sp.series.config
    final = SCREENED_OUT if progress["status"] == SeriesParticipant.SCREENED_OUT else outcome
    return {**outcome_exit(config, final), "debrief_text": config["debrief_text"], "series": progress}


def series_progress(sp: SeriesParticipant) -> dict:
    """Where a series participant stands, moving them on first (assignment.advance_series)."""
    current = assignment.advance_series(sp)
    sp.refresh_from_db(fields=["status"])
    slugs = [study.slug for study in sp.series.ordered_studies()]
    body = {"status": sp.status, "parts": len(slugs),
            "part": slugs.index(current.study.slug) + 1 if current else len(slugs)}
    if current is not None:
        body["next"] = {"token": current.token, "page_url": reverse("study_web:study", args=[current.study.slug]),
                        "part": body["part"]}
    return body


class SeriesDetail(ThrottledEarly, APIView):
    authentication_classes = []

    @extend_schema(responses={200: SeriesPublicSerializer, **errors(404, 429)},
                   summary="What a participant sees before consenting to a series")
    def get(self, request, slug):
        series = get_object_or_404(StudySeries, slug=slug)
        config = series.config
        return respond(SeriesPublicSerializer, {
            "slug": series.slug, "name": series.name, "parts": series.entries.count(), **consent_facts(config),
            "start_url": reverse("studies:series_start", args=[series.slug])})


class StartSeries(StartParticipation):
    """One consent for every study of a series; the first study's participation is
    created at once (its token is in `next`). Newcomers need the first study to take
    newcomers and have room."""

    permission_classes = [permissions.StaffOnlyTest]
    state_serializer = SeriesParticipationSerializer

    def load(self, slug):
        self.series = StudySeries.objects.filter(slug=slug).first()
        if self.series is None:
            raise NotFound("No such series.")
        self.owner_config = self.series.config

    @extend_schema(request=StartParticipationSerializer,
                   responses={201: SeriesParticipationSerializer, 200: SeriesParticipationSerializer,
                              409: OpenApiResponse(ErrorSerializer, description="PROLIFIC_PID taken, or a study is "
                                                                                "not running"),
                              **errors(400, 403, 404, 429)},
                   summary="Give consent once and start (or resume) a series")
    def post(self, request, slug):
        return super().post(request, slug)

    def resume_or_start(self, data, ids) -> tuple[dict, bool]:
        v = data.validated_data
        existing = assignment.existing_participation(self.series.participants, ids["prolific_pid"],
                                                     ids["prolific_session_id"], v["resume_token"])
        if existing is not None:
            return series_state(existing), False
        studies = self.series.ordered_studies()
        if not studies:
            raise NotFound("This series has no studies.")
        self.study = studies[0]
        self.check_newcomer(data)
        sp, created = assignment.start_series(self.series, **ids, browser=v["browser"], screen=v["screen"],
                                              is_test=self.is_test, questionnaire=v["questionnaire"])
        return series_state(sp), created


def series_state(sp: SeriesParticipant) -> dict:
    body = {"token": sp.token, **series_progress(sp)}
    if body["status"] != SeriesParticipant.ACTIVE:
        exit_ = outcome_exit(sp.series.config, body["status"])
        body.update(completion_code=exit_["completion_code"], redirect_url=exit_["redirect_url"])
    return body


class SeriesParticipationDetail(ThrottledEarly, APIView):
    """A series participation by its token: where it stands, or withdrawal from all of it."""

    authentication_classes = []

    def initial(self, request, *args, **kwargs):
        self.check_throttles(request)
        self.sp = SeriesParticipant.objects.select_related("series").filter(token=kwargs.get("token")).first()
        if self.sp is None:
            raise NotFound("No series participation with this token.")
        super().initial(request, *args, **kwargs)

    @extend_schema(responses={200: SeriesParticipationSerializer,
                              409: OpenApiResponse(ErrorSerializer, description="next study not running"),
                              **errors(404, 429)},
                   summary="Progress of a series participation (the current study's token in `next`)")
    def get(self, request, token):
        try:
            return respond(SeriesParticipationSerializer, series_state(self.sp))
        except assignment.SeriesError as e:
            return respond(ErrorSerializer, {"detail": str(e)}, status.HTTP_409_CONFLICT)

    @extend_schema(request=None, responses={204: None, **errors(404, 429)},
                   summary="Withdraw from the series: delete all its data")
    def delete(self, request, token):
        first = self.sp.participations.first()
        if first is not None:
            assignment.withdraw(first)
        else:
            self.sp.delete()
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)
