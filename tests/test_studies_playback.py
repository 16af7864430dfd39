"""The natural-speed playback schedule (studies.core.playback) and what the server does with
it: every trial carries its plan, the plan is stored when the trial is first served, and
an answer that arrives sooner than the playback lasts is flagged 'early'."""
from __future__ import annotations

from datetime import timedelta

import pytest

from studies.core import playback
from studies.assignment import answer_flags
from studies.models import Response, Trial
from tests.factories import make_samples, make_study

JSON = "application/json"
CONFIG = {"playback_seconds": 6.0, "repeats": 1, "slow_motion": 1, "repeat_pause_seconds": 0.5}


def test_clip_plays_at_its_frame_rate_and_repeats_whole_nearest_the_budget():
    # 61 frames at 30 fps last 2 s; 3 showings with 2 pauses of 0.5 s (7 s) come nearer
    # the 6 s budget than 2 (4.5 s).
    p = playback.plan([(61, 30.0)], CONFIG)
    assert p["clip_seconds"] == 2.0 and p["showings"] == 3 and p["total_seconds"] == 7.0
    assert p["effective_fps"] == [30.0]
    assert playback.plan([(61, 30.0)], {**CONFIG, "playback_seconds": 5.0})["showings"] == 2  # 4.5 s, not 7
    # A 60-frame HDM05 window at 120 Hz is 0.49 s: 7 showings (3.44 s + 6 pauses of 0.5 s).
    hdm = playback.plan([(60, 120.0)], CONFIG)
    assert hdm["showings"] == 7 and hdm["total_seconds"] == pytest.approx(7 * 59 / 120 + 6 * 0.5)
    # Slow motion: the same showings, each three times longer; pauses unchanged.
    slow = playback.plan([(61, 30.0)], {**CONFIG, "slow_motion": 3})
    assert slow["showings"] == 3 and slow["total_seconds"] == 19.0 and slow["effective_fps"] == [10.0]
    # A clip longer than the budget plays once, in full, never cut.
    long = playback.plan([(301, 30.0)], CONFIG)
    assert long["showings"] == 1 and long["total_seconds"] == 10.0
    # Side by side, the longer clip sets the showing; repeats multiply the budget (12 s: 5 showings).
    pair = playback.plan([(61, 30.0), (31, 30.0)], {**CONFIG, "repeats": 2})
    assert pair["clip_seconds"] == 2.0 and pair["showings"] == 5
    with pytest.raises(ValueError, match="fps"):
        playback.plan([(61, 0.0)], CONFIG)


@pytest.mark.django_db
def test_the_plan_is_stored_when_served_and_early_answers_are_flagged(client):
    make_samples(num_clips=4, num_frames=61)
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0, playback_seconds=5.0)
    token = client.post("/api/studies/deceitfulness/participations/", {"consent": True},
                        content_type=JSON).json()["token"]
    t = client.get(f"/api/participations/{token}/next/").json()["trial"]
    assert t["playback"]["showings"] == 2 and t["playback"]["total_seconds"] == 4.5
    assert t["options_after_playback"] is True  # deceitfulness shows its labels after the motion
    trial = Trial.objects.get(key=t["trial"])
    served = trial.served_at
    assert served is not None and trial.playback_plan == t["playback"]
    client.get(f"/api/participations/{token}/next/")  # a reload keeps the first serving time
    assert Trial.objects.get(pk=trial.pk).served_at == served

    body = {"trial": t["trial"], "answer": "1", "response_time_ms": 900, "playback": {}}
    assert client.post(f"/api/participations/{token}/answers/", body, content_type=JSON).status_code == 201
    assert Response.objects.get(trial=trial).flags == ["early"]  # answered at once: 4.5 s could not have played

    t2 = client.get(f"/api/participations/{token}/next/").json()["trial"]
    Trial.objects.filter(key=t2["trial"]).update(served_at=served - timedelta(seconds=5))
    body = {"trial": t2["trial"], "answer": "2", "response_time_ms": 900, "playback": {}}
    assert client.post(f"/api/participations/{token}/answers/", body, content_type=JSON).status_code == 201
    assert Response.objects.get(trial__key=t2["trial"]).flags == []


def test_answer_flags_need_a_served_trial_with_a_plan():
    trial = Trial(served_at=None, playback_plan={})
    assert answer_flags(trial) == []
