"""The database side of running a study: opening and closing it, building its stimulus
pool, assigning a new participant's trials (seeded, stored, with usage counts), returning abandoned
participants' stimuli, storing answers idempotently and completing a participation.

Views, the admin and management commands call these functions; protocols stay ORM-free.
The dependency runs one way: this module imports the models, the models never import it.
"""
from __future__ import annotations

import secrets
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.expressions import RawSQL
from django.utils import timezone

from attacks.models import AdversarialSample

from studies.core.errors import StudyError
from studies.models import MotionHandle, Participant, Response, SeriesParticipant, Stimulus, Study, StudySeries, Trial
from studies.core.participation_config import COMPLETED, SCREENED_OUT, TIMED_OUT, consent_version
from studies.protocols.base import SENSITIVITY, PoolItem, SampleInfo, check_capacity, clips_of, items_needed, least_used


def matching_samples(study: Study, config: dict | None = None):
    """The study's candidate samples: its dataset / recognizer / strategy / method filters."""
    config = config or study.config
    qs = AdversarialSample.objects.all()
    if config["datasets"]:
        qs = qs.filter(clip__dataset__name__in=config["datasets"])
    if config["recognizers"]:
        qs = qs.filter(recognizer__name__in=config["recognizers"])
    if config["strategies"]:
        qs = qs.filter(strategy__in=config["strategies"])
    if config.get("methods"):
        qs = qs.filter(method__in=config["methods"])
    return qs


def sample_infos(ids=None, queryset=None) -> dict[int, SampleInfo]:
    """Light descriptions of samples (no motion bytes loaded), by id."""
    qs = queryset if queryset is not None else AdversarialSample.objects.filter(id__in=list(ids))
    rows = qs.values_list("id", "clip_id", "recognizer_id", "strategy", "method", "clip__dataset__name",
                          "label", "label_after", "success", "clip__dataset__class_names")
    return {r[0]: SampleInfo(id=r[0], clip=r[1], recognizer=r[2], strategy=r[3], method=r[4], dataset=r[5],
                             label=r[6], label_after=r[7], success=r[8], class_names=tuple(r[9] or ()))
            for r in rows.order_by("id")}


def build_pool(study: Study) -> int:
    """Create the study's stimulus pool and motion handles from the matching samples.
    Idempotent and safe under concurrency: a study that already has a pool keeps it
    (usage counts included).

    A pool too small for a participant's trials under the clip rule (one source clip at
    most once per participant; practice on clips of its own) is a ConfigurationError
    with the numbers, raised before it is stored, so at `create_study`, `open_study` or
    the first participant, never as sampling with replacement. A draft's existing pool
    is checked again (its configuration may have changed since)."""
    if study.stimuli.exists():
        if study.status == Study.DRAFT:
            _check_capacity(study, [_pool_item(s) for s in study.stimuli.all()])
        return study.stimuli.count()
    with transaction.atomic():
        # A no-op write first: it takes the study's row lock (PostgreSQL) or the write
        # lock (SQLite) before reading, so two first participants cannot both build.
        Study.objects.filter(pk=study.pk).update(kind=F("kind"))
        if study.stimuli.exists():
            return study.stimuli.count()
        return _create_pool(study)


def open_study(study: Study):
    """Open a study for participants, building its stimulus pool first if need be (a pool
    too small is a ConfigurationError, and the study stays as it was)."""
    build_pool(study)
    study.status, study.opened_at = Study.OPEN, study.opened_at or timezone.now()
    study.save(update_fields=["status", "opened_at", "configuration"])


def close_study(study: Study, now: bool = False):
    """Stop taking newcomers. Participants still active may finish (the study is
    'closing' until the last of them completes or times out) unless `now`, which
    closes at once and strands them (their answers stay stored)."""
    if study.status == Study.CLOSED:
        return
    if not now and study.status != Study.DRAFT:
        study.status = Study.CLOSING  # finish_closing below closes it if nobody is active
        study.save(update_fields=["status"])
        release_abandoned(study)  # the timed-out ones must not keep it closing; may close it
        study.refresh_from_db(fields=["status", "closed_at"])
        if study.status == Study.CLOSING:
            study.finish_closing()
        return
    study.status, study.closed_at = Study.CLOSED, timezone.now()
    study.save(update_fields=["status", "closed_at"])


def _create_pool(study: Study) -> int:
    config = study.config
    infos = sample_infos(queryset=matching_samples(study, config))
    items = study.protocol.pool_items(list(infos.values()), config)
    if items:  # an empty pool is reported as such by the callers
        check_capacity(study.protocol, items, infos, config)
    Stimulus.objects.bulk_create([Stimulus(study=study, condition=i.condition, samples=i.samples) for i in items])
    used = sorted({sid for i in items for sid in i.samples.values()})
    MotionHandle.objects.bulk_create(
        [MotionHandle(study=study, sample_id=sid, variant=v, side=side)
         for sid in used for v in (MotionHandle.ORIGINAL, MotionHandle.ADVERSARIAL) for side in ("left", "right")],
        ignore_conflicts=True)
    return len(items)


def _pool_item(stimulus: Stimulus) -> PoolItem:
    return PoolItem(condition=stimulus.condition, samples=stimulus.samples, id=stimulus.id, usage=stimulus.usage_count)


def _check_capacity(study: Study, pool: list[PoolItem]):
    if pool:
        infos = sample_infos(ids={sid for p in pool for sid in p.samples.values()})
        check_capacity(study.protocol, pool, infos, study.config)


class ParticipationConflict(StudyError):
    """A start that names a PROLIFIC_PID with a participation already, without proving it
    is the same person (same SESSION_ID or the browser's resume token)."""


PID_TAKEN = ("This Prolific ID has already started this study from another session. To continue, open the "
             "study from the same browser, or from the link of the same Prolific session.")


def find_resumable(existing, prolific_session_id: str = "", resume_token: str = ""):
    """`existing` when the request proves it continues it, else ParticipationConflict.

    A PROLIFIC_PID is typed into URLs and shared computers; on its own it would hand one
    person's participation (and its completion code) to anyone who knows it. Prolific's
    SESSION_ID is per attempt, and the token is the secret the browser kept."""
    if existing is None:
        return None
    same_session = bool(prolific_session_id) and prolific_session_id == existing.prolific_session_id
    same_browser = bool(resume_token) and secrets.compare_digest(resume_token, existing.token)
    if same_session or same_browser:
        return existing
    raise ParticipationConflict(PID_TAKEN)


def existing_participation(participations, prolific_pid: str = "", prolific_session_id: str = "",
                           resume_token: str = ""):
    """The participation (of a study's or a series' `participations`) that this request
    continues: the one of its resume token (for the same PROLIFIC_PID), else the PID's
    own if `find_resumable` lets it be continued; None for a newcomer."""
    existing = participations.filter(token=resume_token, prolific_pid=prolific_pid).first() \
        if resume_token else None
    if existing is None and prolific_pid:
        existing = find_resumable(participations.filter(prolific_pid=prolific_pid).first(),
                                  prolific_session_id, resume_token)
    return existing


def start_participation(study: Study, *, prolific_pid: str = "", prolific_study_id: str = "",
                        prolific_session_id: str = "", browser: dict | None = None,
                        screen: dict | None = None, resume_token: str = "", is_test: bool = False,
                        is_simulated: bool = False, questionnaire: dict | None = None,
                        series_participant=None, seed: int | None = None) -> tuple[Participant, bool]:
    """A new participant with their whole trial list decided and stored (practice
    first), or the existing participation this request proves to continue (see
    `find_resumable`). Returns (participant, created).

    Test participations (researcher previews) and simulated ones take no stimulus usage,
    so they never change what real participants are shown; a series' participation carries the
    series' consent instead of the study's. `seed` fixes the participant's draws (trial
    order, counterbalancing); None, as for every real participant, draws it from `secrets`,
    so nobody can predict another's list. Simulations pass one so a simulated study is
    reproducible from its seed."""
    existing = existing_participation(study.participants, prolific_pid, prolific_session_id, resume_token)
    if existing is not None:
        _check_same_series(existing, series_participant)
        return existing, False
    release_abandoned(study)
    build_pool(study)
    config = study.config
    seed = secrets.randbits(62) if seed is None else int(seed)
    consent = series_participant
    try:
        with transaction.atomic():
            participant = Participant.objects.create(
                study=study, prolific_pid=prolific_pid, prolific_study_id=prolific_study_id,
                prolific_session_id=prolific_session_id, browser=browser or {}, screen=screen or {}, seed=seed,
                consent_at=consent.consent_at if consent else timezone.now(),
                consent_version=consent.consent_version if consent else consent_version(config),
                is_test=is_test, is_simulated=is_simulated, questionnaire=questionnaire or {},
                series_participant=series_participant)
            participant.num_trials = _assign_trials(study, participant, config)
            participant.num_answered = 0  # as `with_progress` annotates
            participant.current_position = 0 if participant.num_trials else None
            if not participant.holds_usage:
                _add_usage(_unanswered_usage(participant), -1)
    except IntegrityError:
        # The same external id started twice at once: the other request won.
        existing = study.participants.filter(prolific_pid=prolific_pid).first() if prolific_pid else None
        if existing is None:
            raise
        existing = find_resumable(existing, prolific_session_id, resume_token)
        _check_same_series(existing, series_participant)
        return existing, False
    return participant, True


def _check_same_series(existing: Participant, series_participant):
    if series_participant is not None and existing.series_participant_id != series_participant.pk:
        raise ParticipationConflict(f"This Prolific ID has already taken part in “{existing.study.name}” outside "
                                    "this series.")


def trial_rng(config: dict, participant: Participant) -> np.random.Generator:
    return np.random.default_rng([config["seed"], participant.seed])


def _assign_trials(study: Study, participant: Participant, config: dict) -> int:
    """Store a new participant's trials: practice first, then the main and catch trials;
    returns how many.

    Practice feedback reveals the answer key of what it shows, so practice clips are
    set aside first (the most used items, so the least used stay for the main trials)
    and the main and catch trials draw from the other clips only; `check_capacity` made
    sure at pool time that enough are left. Catch trials count as usage like main ones
    (they are released like them too); practice does not."""
    protocol = study.protocol
    pool = [_pool_item(s) for s in study.stimuli.all()]
    infos = sample_infos(ids={sid for p in pool for sid in p.samples.values()})
    rng = trial_rng(config, participant)
    practice_items = least_used(pool, items_needed(protocol, config["practice_trials"]), rng, infos,
                                distinct_clips=True, most_used=True) if config["practice_trials"] else []
    reserved = frozenset().union(*(clips_of(p, infos) for p in practice_items))
    main = protocol.build_trials([p for p in pool if not clips_of(p, infos) & reserved], infos, config, rng)
    practice = protocol.build_trials(practice_items, infos, config, rng, n=config["practice_trials"],
                                     practice=True) if practice_items else []
    handles = {(h.sample_id, h.variant, h.side): h.id for h in study.motion_handles.all()}
    rows = []
    for position, spec in enumerate(practice + main):
        rows.append(Trial(
            participant=participant, position=position, is_practice=spec.is_practice, condition=spec.condition,
            stimulus_id=spec.pool_item.id if spec.pool_item else None,
            left_id=handles[(spec.left.sample, spec.left.variant, spec.left.side or "left")],
            right_id=handles[(spec.right.sample, spec.right.variant, spec.right.side or "right")]
            if spec.right else None,
            options=spec.options, correct=spec.correct,
            design={**spec.design, "left_method": spec.left.method,
                    "right_method": spec.right.method if spec.right else None}))
    Trial.objects.bulk_create(rows)
    _add_usage(Counter(spec.pool_item.id for spec in main if spec.pool_item), +1)
    return len(rows)


def _add_usage(counts: Counter, sign: int):
    # Lock the rows in id order first: concurrent starts then queue instead of deadlocking
    # (PostgreSQL; a no-op on SQLite, whose writers are serialised anyway).
    list(Stimulus.objects.select_for_update().filter(id__in=list(counts)).order_by("id").values_list("id", flat=True))
    # One UPDATE per distinct count value keeps this O(#distinct counts), not O(#stimuli).
    by_count = {}
    for sid, k in counts.items():
        by_count.setdefault(k, []).append(sid)
    for k, ids in by_count.items():
        Stimulus.objects.filter(id__in=ids).update(usage_count=F("usage_count") + sign * k)


def _unanswered_usage(participant: Participant) -> Counter:
    ids = participant.trials.filter(is_practice=False, response__isnull=True, stimulus__isnull=False) \
        .values_list("stimulus_id", flat=True)
    return Counter(ids)


def release_abandoned(study: Study, now=None) -> int:
    """Mark active participants silent for longer than the study's timeout as abandoned
    and return their unanswered stimuli to the pool. Returns how many were released.

    `last_seen_at` may lag a participant's last request by up to `touch_interval` (see
    `touch`), so the cutoff allows for that: nobody is released sooner than the timeout
    after their last request, at most `touch_interval` later."""
    now = now or timezone.now()
    config = study.config
    cutoff = now - timedelta(minutes=config["abandon_after_minutes"]) - touch_interval(config)
    released = 0
    for participant in study.participants.filter(status=Participant.ACTIVE, last_seen_at__lt=cutoff):
        with transaction.atomic():
            changed = Participant.objects.filter(pk=participant.pk, status=Participant.ACTIVE) \
                .update(status=Participant.ABANDONED)
            if changed:
                if participant.holds_usage:
                    _add_usage(_unanswered_usage(participant), -1)
                released += 1
    study.finish_closing()
    return released


def reactivate(participant: Participant) -> bool:
    """An abandoned participant came back: take their unanswered stimuli again."""
    with transaction.atomic():
        changed = Participant.objects.filter(pk=participant.pk, status=Participant.ABANDONED) \
            .update(status=Participant.ACTIVE, last_seen_at=timezone.now())
        if changed and participant.holds_usage:
            _add_usage(_unanswered_usage(participant), +1)
    participant.refresh_from_db()
    return bool(changed)


def current_trial(participant: Participant) -> Trial | None:
    """The first unanswered trial (where a refreshed page resumes), or None when done."""
    return participant.trials.filter(response__isnull=True).order_by("position") \
        .select_related("left", "right").first()


def with_progress(participants):
    """`participants` annotated with `num_trials`, `num_answered` and `current_position`
    (the first unanswered trial's position, None when all are answered), in the same
    query, so a request needs no counts of its own. Correlated subqueries written out:
    the ORM's Subquery expressions cost more to compile than the query takes to run."""
    q = connection.ops.quote_name
    p, t, r = (q(m._meta.db_table) for m in (Participant, Trial, Response))
    mine = f"{t}.{q('participant_id')} = {p}.{q('id')}"
    return participants.annotate(
        num_trials=RawSQL(f"SELECT COUNT(*) FROM {t} WHERE {mine}", ()),
        num_answered=RawSQL(f"SELECT COUNT(*) FROM {r} WHERE {r}.{q('participant_id')} = {p}.{q('id')}", ()),
        current_position=RawSQL(f"SELECT MIN({t}.{q('position')}) FROM {t} WHERE {mine} AND NOT EXISTS "
                                f"(SELECT 1 FROM {r} WHERE {r}.{q('trial_id')} = {t}.{q('id')})", ()))


# A participant's requests move `last_seen_at` at most this often (and at most every tenth
# of the study's timeout), not on every request: a write per request costs more than the
# rest of it. `release_abandoned` allows for the lag.
TOUCH_SECONDS = 60.0


def touch_interval(config: dict) -> timedelta:
    return timedelta(seconds=min(TOUCH_SECONDS, config["abandon_after_minutes"] * 60 / 10))


def touch(participant: Participant, now=None, config: dict | None = None) -> bool:
    """Note that the participant is still there (for `release_abandoned`); writes only
    when `last_seen_at` is older than `touch_interval`. Returns whether it wrote."""
    now = now or timezone.now()
    interval = touch_interval(config or participant.study.config)
    if participant.last_seen_at is not None and now - participant.last_seen_at < interval:
        return False
    with bookkeeping_commit():
        Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)
    participant.last_seen_at = now
    return True


@contextmanager
def bookkeeping_commit():
    """A write whose commit does not wait for the disk: PostgreSQL's synchronous_commit
    off for this transaction alone (a durable commit waits ~4 ms for the WAL flush on the
    development box, more than the rest of a request). For bookkeeping whose loss in a
    database crash is harmless (the last fraction of a second of it, the database stays
    consistent): serving times and last-seen times, never answers or assignments. On
    other databases, or inside a caller's transaction, an ordinary write."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def mark_served(trial: Trial, plan: dict):
    """Remember when a trial first reached the browser and the playback schedule it was
    sent with (one write per trial: later fetches, e.g. after a reload, keep the first)."""
    if trial.served_at is not None:
        return
    now = timezone.now()
    with bookkeeping_commit():  # lost in a crash, the next fetch serves the trial again
        updated = Trial.objects.filter(pk=trial.pk, served_at__isnull=True).update(served_at=now, playback_plan=plan)
    if updated:
        trial.served_at, trial.playback_plan = now, plan


def answer_flags(trial: Trial, now=None) -> list[str]:
    """Server-side findings about an answer arriving now. 'early': sooner after the trial
    was first served than its playback lasts, which no browser that played it can do
    (the server clock, not the page's log, so a script cannot talk its way out)."""
    now = now or timezone.now()
    total = (trial.playback_plan or {}).get("total_seconds")
    if trial.served_at is None or total is None:
        return []
    return ["early"] if (now - trial.served_at).total_seconds() < total else []


def store_answer(participant: Participant, trial: Trial, answer: str, response_time_ms: int,
                 playback: dict) -> tuple[Response, bool]:
    """Save the answer once; a repeat returns the stored one. Returns (response, created)."""
    if Trial.response.is_cached(trial):  # loaded with the trial (select_related): a repeat needs no INSERT
        try:
            return trial.response, False
        except Response.DoesNotExist:
            pass
    is_correct = (answer == trial.correct) if trial.correct else None
    try:
        with transaction.atomic():
            response = Response.objects.create(trial=trial, participant=participant, answer=answer,
                                               is_correct=is_correct, response_time_ms=response_time_ms,
                                               playback=playback, flags=answer_flags(trial))
            return response, True
    except IntegrityError:
        return Response.objects.get(trial=trial), False


def complete(participant: Participant) -> Participant:
    """Close a fully answered participation: completed, or screened out (data kept,
    flagged) when its sensitivity accuracy is below the study's threshold."""
    if participant.status in (Participant.COMPLETED, Participant.SCREENED_OUT):
        return participant
    config = participant.study.config
    sens = participant.responses.filter(trial__condition=SENSITIVITY, trial__is_practice=False)
    n = sens.count()
    accuracy = sens.filter(is_correct=True).count() / n if n else None
    status = Participant.SCREENED_OUT if accuracy is not None and accuracy < config["screening_threshold"] \
        else Participant.COMPLETED
    Participant.objects.filter(pk=participant.pk, status__in=[Participant.ACTIVE, Participant.ABANDONED]) \
        .update(status=status, sensitivity_accuracy=accuracy, completed_at=timezone.now())
    participant.refresh_from_db()
    participant.study.finish_closing()
    if participant.series_participant_id:
        try:
            advance_series(participant.series_participant)
        except SeriesError:
            pass  # the next part is not running; the series' state says so when asked
    return participant


def outcome(participant: Participant) -> str:
    """How a participation ended, as the crowdsourcing platform is told (outcome codes)."""
    return {Participant.SCREENED_OUT: SCREENED_OUT, Participant.ABANDONED: TIMED_OUT}.get(participant.status,
                                                                                         COMPLETED)


def _held_usage(participant: Participant) -> Counter:
    """The stimulus usage a participation holds: every main trial's stimulus, less the
    unanswered ones an abandoned participation already gave back."""
    held = Counter(participant.trials.filter(is_practice=False, stimulus__isnull=False)
                   .values_list("stimulus_id", flat=True))
    if participant.status == Participant.ABANDONED:
        held -= _unanswered_usage(participant)
    return held


def withdraw(participant: Participant) -> int:
    """Delete a participation with its trials and answers at the participant's request,
    and give its stimuli back to the pool: answered ones too, since their answers no
    longer exist and another participant should see them. In a series the person
    consented once, so the whole series participation goes. Returns how many study
    participations were deleted."""
    sp = participant.series_participant
    targets = list(sp.participations.select_related("study")) if sp else [participant]
    with transaction.atomic():
        for p in targets:
            if p.holds_usage:
                _add_usage(_held_usage(p), -1)
            p.delete()
        if sp:
            sp.delete()
    for p in targets:
        p.study.finish_closing()
    return len(targets)


class SeriesError(StudyError):
    """The next study of a series cannot be started (it is not running)."""


def start_series(series: StudySeries, *, prolific_pid: str = "", prolific_study_id: str = "",
                 prolific_session_id: str = "", browser: dict | None = None, screen: dict | None = None,
                 resume_token: str = "", is_test: bool = False,
                 questionnaire: dict | None = None) -> tuple[SeriesParticipant, bool]:
    """One consent for the whole series: the series participation and the first study's
    participation, or the existing series participation this request proves to continue.
    Returns (series participant, created)."""
    existing = existing_participation(series.participants, prolific_pid, prolific_session_id, resume_token)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            sp = SeriesParticipant.objects.create(
                series=series, prolific_pid=prolific_pid, prolific_study_id=prolific_study_id,
                prolific_session_id=prolific_session_id, consent_at=timezone.now(),
                consent_version=consent_version(series.config), is_test=is_test)
            advance_series(sp, browser=browser, screen=screen, questionnaire=questionnaire)
    except IntegrityError:
        existing = series.participants.filter(prolific_pid=prolific_pid).first() if prolific_pid else None
        if existing is None:
            raise
        return find_resumable(existing, prolific_session_id, resume_token), False
    return sp, True


def advance_series(sp: SeriesParticipant, browser: dict | None = None, screen: dict | None = None,
                   questionnaire: dict | None = None) -> Participant | None:
    """Move a series participant on: their unfinished study participation, or the next
    study's (created here, with the series' consent and questionnaire answers), or
    None when the series has ended (completed, or screened out).

    Screening out in any study excludes the person from every study of the series (the
    paper discards a participant's data below the threshold): the series stops, and
    the participations already completed are marked screened out as well."""
    with transaction.atomic():
        sp = SeriesParticipant.objects.select_for_update().select_related("series").get(pk=sp.pk)
        if sp.status != SeriesParticipant.ACTIVE:
            return None
        mine = {p.study_id: p for p in sp.participations.all()}
        if any(p.status == Participant.SCREENED_OUT for p in mine.values()):
            sp.participations.exclude(status=Participant.SCREENED_OUT).update(status=Participant.SCREENED_OUT)
            SeriesParticipant.objects.filter(pk=sp.pk).update(status=SeriesParticipant.SCREENED_OUT,
                                                             completed_at=timezone.now())
            return None
        earlier = next(iter(mine.values()), None)
        for study in sp.series.ordered_studies():
            current = mine.get(study.id)
            if current is not None and current.status != Participant.COMPLETED:
                return current
            if current is None:
                if not study.takes_answers:
                    raise SeriesError(f"The next part of this series (“{study.name}”) is not running.")
                try:
                    return _start_part(study, sp, earlier, browser, screen, questionnaire)
                except ParticipationConflict as e:  # e.g. the PID took that study outside the series
                    raise SeriesError(str(e)) from e
        SeriesParticipant.objects.filter(pk=sp.pk).update(status=SeriesParticipant.COMPLETED,
                                                         completed_at=timezone.now())
        return None


def _start_part(study: Study, sp: SeriesParticipant, earlier: Participant | None, browser, screen,
                questionnaire) -> Participant:
    """The series participant's participation in `study`, with the facts and answers
    given at the series' start (taken from an earlier part when not given again)."""
    return start_participation(
        study, prolific_pid=sp.prolific_pid, prolific_study_id=sp.prolific_study_id,
        prolific_session_id=sp.prolific_session_id, is_test=sp.is_test, series_participant=sp,
        browser=browser if browser is not None else (earlier.browser if earlier else {}),
        screen=screen if screen is not None else (earlier.screen if earlier else {}),
        questionnaire=questionnaire if questionnaire is not None else (earlier.questionnaire if earlier else {}))[0]
