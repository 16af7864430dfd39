"""The participant API rule by rule: consent, ownership, order, idempotency, valid
choices, malformed JSON, resume, completion, caching, stimulus spread and release, and
that no participant-facing response reveals the answer key."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from studies import assignment
from studies.models import MotionHandle, Participant, Response, Stimulus, Study, Trial
from studies.protocols.base import ConfigurationError
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"
FORBIDDEN_WORDS = ("attack", "adversarial", "smart", "l2", "iaa", "ciasa", "truth", "ground", "correct",
                   "sample", "method", "variant", "design", "condition", "perceiv", "sensitiv")
OPAQUE_FIELDS = {"data", "trial", "key", "url", "token", "next_url", "complete_url", "start_url"}
NUMERIC_FIELDS = {"position", "total", "num_joints", "bones", "shape", "fps", "offset", "scale", "answered",
                  "remaining", "seconds", "repeats", "slow_motion", "trials", "practice_trials", "frames",
                  "effective_fps", "clip_seconds", "showings", "pause_seconds", "total_seconds"}


@pytest.fixture
def world():
    return make_samples(num_clips=8)  # enough distinct clips for 3 trials + 2 practice (one clip once each)


def start(client, slug, **extra):
    return client.post(f"/api/studies/{slug}/participations/", {"consent": True, **extra}, content_type=JSON)


def next_trial(client, token, **params):
    return client.get(f"/api/participations/{token}/next/", params)


def answer(client, token, trial, value=None, **extra):
    body = {"trial": trial["trial"] if isinstance(trial, dict) else trial,
            "answer": value if value is not None else trial["options"][0]["value"], "response_time_ms": 1200,
            "playback": {"measured_duration_ms": 6010.5, "frames_drawn": 180, "late_frames": 2, "page_hidden": False},
            **extra}
    return client.post(f"/api/participations/{token}/answers/", body, content_type=JSON)


def test_start_needs_consent_an_open_study_and_valid_json(client, world):
    make_study("deceitfulness", trials_per_participant=3)
    make_study("indistinguishability", slug="draft-one", status="draft", trials_per_participant=3)
    r = client.post("/api/studies/deceitfulness/participations/", {"consent": False}, content_type=JSON)
    assert r.status_code == 400 and "Consent" in r.json()["consent"][0]
    assert start(client, "draft-one").status_code == 403
    assert "not open" in start(client, "draft-one").json()["detail"]
    assert start(client, "nope").status_code == 404
    r = client.post("/api/studies/deceitfulness/participations/", "{consent: tru", content_type=JSON)
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    assert Participant.objects.count() == 0


def test_start_stores_external_ids_and_resumes_the_same_prolific_participant(client, world):
    make_study("deceitfulness", trials_per_participant=3)
    facts = {"PROLIFIC_PID": "pid-1", "STUDY_ID": "s-9", "SESSION_ID": "sess", "screen": {"width": 1920},
             "browser": {"userAgent": "bot"}}
    first = start(client, "deceitfulness", **facts)
    assert first.status_code == 201
    again = start(client, "deceitfulness", **facts)
    assert again.status_code == 200 and again.json()["token"] == first.json()["token"]
    p = Participant.objects.get()
    assert (p.prolific_pid, p.prolific_study_id, p.prolific_session_id) == ("pid-1", "s-9", "sess")
    assert p.screen == {"width": 1920} and p.consent_at is not None and len(p.token) >= 32
    assert p.trials.count() == 3 + 2  # main + default practice


def test_target_participants_limits_new_starts(client, world):
    make_study("deceitfulness", trials_per_participant=2, target_participants=1)
    assert start(client, "deceitfulness").status_code == 201
    r = start(client, "deceitfulness")
    assert r.status_code == 403 and "target" in r.json()["detail"]


def test_next_trial_carries_motions_bones_and_playback(client, world):
    make_study("naturalness", trials_per_participant=4, practice_trials=0, slow_motion=3)
    token = start(client, "naturalness").json()["token"]
    t = next_trial(client, token).json()["trial"]
    assert t["position"] == 0 and t["total"] == 4 and not t["is_practice"]
    assert [m["side"] for m in t["motions"]] == ["left", "right"]
    assert t["motions"][0]["motion"]["shape"] == [1, 30, 25, 3]
    assert len(t["skeleton"]["bones"]) == 24 and t["skeleton"]["num_joints"] == 25
    # Natural speed: the 30-frame, 30 fps clip (0.97 s) repeats 9 times for the 12 s budget
    # (6 s x 2 repeats) with 0.5 s pauses, each showing 3x slower (studies.core.playback).
    assert t["playback"]["fps"] == [30.0, 30.0] and t["playback"]["showings"] == 9
    assert t["playback"]["total_seconds"] == pytest.approx(9 * 3 * 29 / 30 + 8 * 0.5)
    assert t["options_after_playback"] is False
    lean = next_trial(client, token, embed="0").json()["trial"]
    assert "motion" not in lean["motions"][0] and lean["trial"] == t["trial"]


def test_answer_is_idempotent_and_a_changed_retry_conflicts(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    token = start(client, "deceitfulness").json()["token"]
    t = next_trial(client, token).json()["trial"]
    first = answer(client, token, t, "1")
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = answer(client, token, t, "1")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    changed = answer(client, token, t, "2")
    assert changed.status_code == 409 and changed.json()["answer"] == "1"
    assert Response.objects.count() == 1 and Response.objects.get().answer == "1"


def test_store_answer_race_keeps_one_row(world):
    study = make_study("deceitfulness", trials_per_participant=1, practice_trials=0)
    p, _ = assignment.start_participation(study)
    trial = p.trials.get()
    _, created1 = assignment.store_answer(p, trial, "1", 10, {})
    _, created2 = assignment.store_answer(p, trial, "2", 10, {})
    assert (created1, created2) == (True, False) and Response.objects.get().answer == "1"


def test_answer_for_another_participants_trial_is_forbidden(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    mine = start(client, "deceitfulness").json()["token"]
    theirs = start(client, "deceitfulness").json()["token"]
    their_trial = next_trial(client, theirs).json()["trial"]
    r = answer(client, mine, their_trial)
    assert r.status_code == 403 and "another participation" in r.json()["detail"]
    assert Response.objects.count() == 0


def test_answer_for_a_trial_not_yet_reached_is_refused(client, world):
    make_study("deceitfulness", trials_per_participant=3, practice_trials=0)
    token = start(client, "deceitfulness").json()["token"]
    later = Trial.objects.get(participant__token=token, position=2)
    r = answer(client, token, later.key, "1")
    assert r.status_code == 403 and "not been reached" in r.json()["detail"]
    assert Response.objects.count() == 0


def test_invalid_choice_unknown_trial_and_malformed_bodies(client, world):
    make_study("indistinguishability", trials_per_participant=2, practice_trials=0)
    token = start(client, "indistinguishability").json()["token"]
    t = next_trial(client, token).json()["trial"]
    r = answer(client, token, t, "maybe")
    assert r.status_code == 400 and "Invalid choice" in r.json()["answer"][0]
    assert answer(client, token, "no-such-trial", "changed").status_code == 404
    r = client.post(f"/api/participations/{token}/answers/", '{"trial": "x", "answer": ', content_type=JSON)
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = client.post(f"/api/participations/{token}/answers/", "[1, 2]", content_type=JSON)
    assert r.status_code == 400
    r = client.post(f"/api/participations/{token}/answers/", {"trial": t["trial"], "answer": "changed"},
                    content_type=JSON)
    assert r.status_code == 400 and "response_time_ms" in r.json()
    r = answer(client, token, t, "changed", response_time_ms=-5)
    assert r.status_code == 400
    r = answer(client, token, t, "changed", playback={"late_frames": -1})
    assert r.status_code == 400
    assert client.get("/api/participations/not-a-token/next/").status_code == 404
    assert Response.objects.count() == 0


def test_refresh_resumes_at_first_unanswered_trial(client, world):
    make_study("comparison", trials_per_participant=4, practice_trials=0)
    token = start(client, "comparison").json()["token"]
    t0 = next_trial(client, token).json()["trial"]
    assert next_trial(client, token).json()["trial"]["trial"] == t0["trial"]  # refresh: same trial
    answer(client, token, t0)
    t1 = next_trial(client, token).json()["trial"]
    assert t1["position"] == 1
    state = client.get(f"/api/participations/{token}/").json()
    assert (state["answered"], state["total"]) == (1, 4)


def test_completion_only_after_every_answer(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=1,
               redirect_url="https://app.prolific.com/submissions/complete?cc={code}", completion_code="C0DE42")
    token = start(client, "deceitfulness").json()["token"]
    r = client.post(f"/api/participations/{token}/complete/")
    assert r.status_code == 409 and "completion_code" not in r.json()
    while not (n := next_trial(client, token).json())["done"]:
        answer(client, token, n["trial"])
    assert n["complete_url"].endswith("/complete/")
    r = client.post(f"/api/participations/{token}/complete/")
    assert r.json() == {"outcome": "completed", "completion_code": "C0DE42", "debrief_text": "",
                        "redirect_url": "https://app.prolific.com/submissions/complete?cc=C0DE42"}
    assert Participant.objects.get().status == Participant.COMPLETED
    assert client.post(f"/api/participations/{token}/complete/").status_code == 200  # repeatable


def test_practice_trials_come_first_and_give_feedback(client, world):
    make_study("indistinguishability", trials_per_participant=2, practice_trials=2)
    token = start(client, "indistinguishability").json()["token"]
    t = next_trial(client, token).json()["trial"]
    assert t["is_practice"]
    body = answer(client, token, t, "changed").json()
    assert body["feedback"]["expected"] in ("changed", "unchanged")
    assert body["feedback"]["correct"] == (body["feedback"]["expected"] == "changed")
    answer(client, token, next_trial(client, token).json()["trial"])
    main = next_trial(client, token).json()["trial"]
    assert not main["is_practice"] and "feedback" not in answer(client, token, main).json()


def test_closed_study_refuses_answers(client, world):
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    token = start(client, "deceitfulness").json()["token"]
    t = next_trial(client, token).json()["trial"]
    assignment.close_study(Study.objects.get(pk=study.pk), now=True)  # closing without `now` lets active ones finish
    assert answer(client, token, t).status_code == 403
    assert next_trial(client, token).status_code == 403


def test_motion_endpoint_is_cacheable_and_opaque(client, world):
    make_study("indistinguishability", trials_per_participant=6, practice_trials=0, sensitivity_share=0.5)
    token = start(client, "indistinguishability").json()["token"]
    participant = Participant.objects.get(token=token)
    for trial in participant.trials.all():
        assert trial.left.key != trial.right.key  # identical originals still get different keys
    key = next_trial(client, token).json()["trial"]["motions"][1]["key"]
    r = client.get(f"/api/motions/{key}/")
    assert r.status_code == 200 and "immutable" in r["Cache-Control"] and "public" in r["Cache-Control"]
    assert len(r.content) <= 30_000
    etag = r["ETag"]
    r2 = client.get(f"/api/motions/{key}/", HTTP_IF_NONE_MATCH=etag)
    assert r2.status_code == 304 and r2["ETag"] == etag
    assert client.get("/api/motions/unknown-key/").status_code == 404
    assert not any(w in key.lower() for w in ("orig", "adv"))
    assert MotionHandle.objects.filter(key=key).count() == 1


def test_stimuli_spread_evenly_over_participants(world):
    study = make_study("deceitfulness", trials_per_participant=3, practice_trials=0)
    for _ in range(8):
        assignment.start_participation(study)
    counts = list(Stimulus.objects.filter(study=study).values_list("usage_count", flat=True))
    assert sum(counts) == 24 and max(counts) - min(counts) <= 1


def test_abandoned_participants_return_their_stimuli_and_can_come_back(client, world):
    study = make_study("deceitfulness", trials_per_participant=3, practice_trials=0, abandon_after_minutes=30)
    token = start(client, "deceitfulness").json()["token"]
    answer(client, token, next_trial(client, token).json()["trial"])
    assert sum(Stimulus.objects.values_list("usage_count", flat=True)) == 3
    Participant.objects.filter(token=token).update(last_seen_at=timezone.now() - timedelta(hours=1))
    start(client, "deceitfulness")  # a newcomer triggers the release
    assert Participant.objects.get(token=token).status == Participant.ABANDONED
    assert sum(Stimulus.objects.values_list("usage_count", flat=True)) == 1 + 3  # 2 unanswered returned
    assert assignment.release_abandoned(study) == 0  # not released twice
    assert next_trial(client, token).status_code == 200  # coming back reactivates
    assert Participant.objects.get(token=token).status == Participant.ACTIVE
    assert sum(Stimulus.objects.values_list("usage_count", flat=True)) == 3 + 3


def test_a_full_study_releases_timed_out_participants_before_refusing_newcomers(client, world):
    make_study("deceitfulness", trials_per_participant=2, target_participants=1, abandon_after_minutes=30)
    stale = start(client, "deceitfulness").json()["token"]
    assert start(client, "deceitfulness").status_code == 403  # full: the first one is still active
    Participant.objects.filter(token=stale).update(last_seen_at=timezone.now() - timedelta(hours=1))
    assert start(client, "deceitfulness").status_code == 201  # the timed-out one no longer holds the place
    assert Participant.objects.get(token=stale).status == Participant.ABANDONED


def test_practice_stimuli_are_not_met_again_in_the_main_trials(world):
    study = make_study("deceitfulness", trials_per_participant=6, practice_trials=2)  # pool of 8 clips
    for _ in range(4):
        p, _ = assignment.start_participation(study)
        practice = set(p.trials.filter(is_practice=True).values_list("stimulus_id", flat=True))
        main = set(p.trials.filter(is_practice=False).values_list("stimulus_id", flat=True))
        assert len(main) == 6 and len(practice) == 2 and not practice & main
        clips = list(p.trials.values_list("left__sample__clip_id", flat=True))
        assert len(clips) == len(set(clips)) == 8  # no clip twice, practice included
    # no clip left over for practice: refused when the study opens, with the numbers
    with pytest.raises(ConfigurationError, match="8 distinct clips, 7 trials per participant need 7, "
                                                 "2 practice trials 2 more"):
        make_study("indistinguishability", slug="small", trials_per_participant=7, practice_trials=2)
    assert Study.objects.get(slug="small").stimuli.count() == 0


def test_openapi_schema_lists_the_participant_endpoints(client):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    paths = json.loads(r.content)["paths"] if r["Content-Type"].startswith("application/json") else r.content.decode()
    for p in ("/api/studies/{slug}/participations/", "/api/participations/{token}/next/",
              "/api/participations/{token}/answers/", "/api/participations/{token}/complete/",
              "/api/motions/{key}/"):
        assert p in paths


def scan(value, where, path=()):
    """Fail on any key or readable value that could reveal the answer key."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert not any(w in k.lower() for w in FORBIDDEN_WORDS), f"{where}: key {k!r} at {path}"
            scan(v, where, path + (k,))
    elif isinstance(value, list):
        for v in value:
            scan(v, where, path)
    elif isinstance(value, str):
        if path and path[-1] in OPAQUE_FIELDS:
            return
        assert not any(w in value.lower() for w in FORBIDDEN_WORDS), f"{where}: {value!r} at {path}"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        assert path and path[-1] in NUMERIC_FIELDS, f"{where}: number {value!r} at {path}"


@pytest.mark.parametrize("kind", ["deceitfulness", "naturalness", "indistinguishability", "comparison"])
def test_no_participant_facing_response_reveals_the_answer_key(client, world, kind):
    make_study(kind, trials_per_participant=8, practice_trials=0, instructions="Watch closely.")
    r = client.get(f"/api/studies/{kind}/")
    scan(r.json(), "study")
    token = start(client, kind).json()["token"]
    first_option_is_truth, prompts = [], set()
    while True:
        r = next_trial(client, token)
        scan(r.json(), "next")
        if r.json()["done"]:
            break
        t = r.json()["trial"]
        prompts.add(t["prompt"])  # the same words on every trial, whatever it shows
        trial = Trial.objects.get(key=t["trial"])
        if kind == "deceitfulness":
            first_option_is_truth.append(trial.correct == t["options"][0]["value"])
        for m in t["motions"]:
            scan(json.loads(client.get(m["url"]).content), "motion")
        r = answer(client, token, t)
        scan(r.json(), "answer")
    scan(client.get(f"/api/participations/{token}/").json(), "state")
    scan(client.post(f"/api/participations/{token}/complete/").json(), "complete")
    assert len(prompts) == 1
    if kind == "deceitfulness":
        assert 0 < sum(first_option_is_truth) < len(first_option_is_truth)  # the position varies
