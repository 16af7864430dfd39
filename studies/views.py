"""Participant-facing REST API: thin views that load the participant or study, let the
permissions and serializers judge the request, and call `studies.assignment`.

Participants authenticate with the unguessable token in the URL (no session, so no
CSRF); researchers use the admin.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from django.core.cache import cache
from django.http import HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from attacks.models import AdversarialSample, Dataset

from . import assignment, permissions
from .throttling import ThrottledEarly
from .models import MotionHandle, Participant, Study, Trial
from .payloads import encode_handle
from .serializers import (AnswerResultSerializer, AnswerSerializer, CompletionSerializer, NextTrialSerializer,
                          ParticipationSerializer, StartParticipationSerializer, StudyPublicSerializer)

MOTION_MAX_AGE = 7 * 24 * 3600


class ParticipantView(ThrottledEarly, APIView):
    """Base: no session authentication, JSON only, `self.participant` from the URL token."""

    authentication_classes = []
    parser_classes = [JSONParser]

    def initial(self, request, *args, **kwargs):
        self.check_throttles(request)
        self.participant = Participant.objects.select_related("study").filter(token=kwargs.get("token")).first()
        if self.participant is None:
            raise NotFound("No participation with this token.")
        self.study = self.participant.study
        if self.participant.status == Participant.ABANDONED and self.study.status == Study.OPEN:
            assignment.reactivate(self.participant)
        super().initial(request, *args, **kwargs)

    def progress(self):
        p = self.participant
        total = p.trials.count()
        answered = p.responses.count()
        return answered, total


class StudyDetail(ThrottledEarly, APIView):
    authentication_classes = []

    @extend_schema(responses=StudyPublicSerializer, summary="What a participant sees before consenting")
    def get(self, request, slug):
        study = get_object_or_404(Study, slug=slug)
        config = study.config
        return ApiResponse(StudyPublicSerializer({
            "slug": study.slug, "name": study.name, "status": study.status,
            "consent_text": config["consent_text"], "instructions": config["instructions"],
            "trials": config["trials_per_participant"], "practice_trials": config["practice_trials"],
            "playback": playback_settings(config),
            "start_url": reverse("studies:start", args=[study.slug])}).data)


class StartParticipation(ThrottledEarly, APIView):
    authentication_classes = []
    parser_classes = [JSONParser]
    permission_classes = [permissions.StudyIsOpen, permissions.StudyHasRoom]

    def initial(self, request, *args, **kwargs):
        self.check_throttles(request)
        self.study = Study.objects.filter(slug=kwargs["slug"]).first()
        if self.study is None:
            raise NotFound("No such study.")
        # Before StudyHasRoom counts: participants past the timeout must not keep a full
        # study closed to newcomers (nothing else would ever release them).
        assignment.release_abandoned(self.study)
        super().initial(request, *args, **kwargs)

    @extend_schema(request=StartParticipationSerializer, responses={201: ParticipationSerializer,
                                                                    200: ParticipationSerializer},
                   summary="Give consent and start (or resume, for a known PROLIFIC_PID) a participation")
    def post(self, request, slug):
        data = StartParticipationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        participant, created = assignment.start_participation(
            self.study, prolific_pid=v["PROLIFIC_PID"], prolific_study_id=v["STUDY_ID"],
            prolific_session_id=v["SESSION_ID"], browser=v["browser"], screen=v["screen"])
        return ApiResponse(participation_state(participant),
                           status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ParticipationDetail(ParticipantView):
    @extend_schema(responses=ParticipationSerializer, summary="Progress of a participation")
    def get(self, request, token):
        return ApiResponse(participation_state(self.participant))


class NextTrial(ParticipantView):
    permission_classes = [permissions.StudyIsOpen, permissions.ParticipationIsLive]

    @extend_schema(
        responses=NextTrialSerializer,
        parameters=[OpenApiParameter("embed", str, description="'0' to leave the motion data out (fetch the "
                                                               "cacheable motion URLs instead)")],
        summary="The first unanswered trial: what to show and ask (a refreshed page resumes here)")
    def get(self, request, token):
        assignment.touch(self.participant)
        trial = assignment.current_trial(self.participant)
        if trial is None:
            return ApiResponse({"done": True, "complete_url": reverse("studies:complete", args=[token])})
        embed = request.query_params.get("embed", "1") != "0"
        total = self.participant.trials.count()
        return ApiResponse({"done": False, "trial": trial_payload(trial, self.study, total, embed)})


class SubmitAnswer(ParticipantView):
    permission_classes = [permissions.StudyIsOpen, permissions.ParticipationIsLive,
                          permissions.OwnsTrial, permissions.TrialReached]

    @extend_schema(request=AnswerSerializer, responses={201: AnswerResultSerializer, 200: AnswerResultSerializer,
                                                        409: OpenApiResponse(description="already answered differently")},
                   summary="Store the answer to one trial (a repeat returns the stored answer)")
    def post(self, request, token):
        key = request.data.get("trial") if isinstance(request.data, dict) else None
        trial = Trial.objects.select_related("participant", "response").filter(key=str(key)).first() \
            if key else None
        if trial is None:
            AnswerSerializer(data=request.data).is_valid(raise_exception=True)
            raise NotFound("No such trial.")
        self.current = assignment.current_trial(self.participant)
        self.check_object_permissions(request, trial)
        data = AnswerSerializer(data=request.data, context={"trial": trial})
        data.is_valid(raise_exception=True)
        v = data.validated_data
        response, created = assignment.store_answer(self.participant, trial, v["answer"], v["response_time_ms"],
                                                    v["playback"])
        assignment.touch(self.participant)
        answered, total = self.progress()
        body = {"trial": trial.key, "answer": response.answer, "duplicate": not created,
                "remaining": total - answered}
        if trial.is_practice:
            body["feedback"] = {"correct": response.is_correct,
                                "expected": trial.correct or None}
        if not created and response.answer != v["answer"]:
            body["detail"] = "This trial was already answered; the first answer is kept."
            return ApiResponse(body, status=status.HTTP_409_CONFLICT)
        return ApiResponse(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CompleteParticipation(ParticipantView):
    permission_classes = [permissions.ParticipationIsLive]

    @extend_schema(request=None, responses={200: CompletionSerializer,
                                            409: OpenApiResponse(description="trials still unanswered")},
                   summary="Finish: the completion code and redirect, once every answer is stored")
    def post(self, request, token):
        answered, total = self.progress()
        if answered < total:
            return ApiResponse({"detail": f"{total - answered} trials are still unanswered.",
                                "remaining": total - answered}, status=status.HTTP_409_CONFLICT)
        assignment.complete(self.participant)
        config = self.study.config
        return ApiResponse({"completion_code": config["completion_code"],
                            "redirect_url": config["redirect_url"].replace("{code}", config["completion_code"])})


class MotionDetail(ThrottledEarly, APIView):
    """One motion by its opaque key; immutable, so cached by browsers and proxies."""

    authentication_classes = []

    @extend_schema(responses={200: OpenApiResponse(description="encoded motion (studies.payloads)")},
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
    own quantisation grid, a catch trial's broken view broken (`payloads.encode_handle`)."""
    cache_key = f"studies:motion:{key}"
    body = cache.get(cache_key)
    if body is None:
        handle = MotionHandle.objects.select_related("sample", "study").filter(key=key).first()
        if handle is None:
            return None
        body = json.dumps(encode_handle(handle), separators=(",", ":"))
        cache.set(cache_key, body, timeout=MOTION_MAX_AGE)
    return body


@lru_cache(maxsize=4096)
def _dataset_of_sample(sample_id: int) -> int:
    return AdversarialSample.objects.filter(pk=sample_id).values_list("clip__dataset_id", flat=True).get()


@lru_cache(maxsize=64)
def _skeleton_facts(dataset_id: int) -> dict:
    skeleton = Dataset.objects.get(pk=dataset_id).get_skeleton()
    return {"num_joints": len(skeleton.joints), "bones": [list(b) for b in skeleton.bones], "up": "y"}


def playback_settings(config: dict) -> dict:
    return {"seconds": config["playback_seconds"], "repeats": config["repeats"],
            "slow_motion": config["slow_motion"]}


def trial_payload(trial: Trial, study: Study, total: int, embed: bool) -> dict:
    motions = []
    for side, handle in (("left", trial.left), ("right", trial.right)):
        if handle is None:
            continue
        ref = {"side": side, "key": handle.key, "url": reverse("studies:motion", args=[handle.key])}
        if embed:
            ref["motion"] = json.loads(motion_json(handle.key))
        motions.append(ref)
    dataset_id = _dataset_of_sample(trial.left.sample_id)
    return {"trial": trial.key, "position": trial.position, "total": total, "is_practice": trial.is_practice,
            "prompt": study.protocol.PROMPT,
            "options": [{"value": o["value"], "text": o["text"]} for o in trial.options],
            "motions": motions, "skeleton": _skeleton_facts(dataset_id),
            "playback": playback_settings(study.config)}


def participation_state(participant: Participant) -> dict:
    total = participant.trials.count()
    answered = participant.responses.count()
    return {"token": participant.token, "status": participant.status, "answered": answered, "total": total,
            "next_url": reverse("studies:next", args=[participant.token])}
