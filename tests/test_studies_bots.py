"""oTree-style bots: 50 simulated participants per study kind walk the real API with the
Django test client, misbehaving on purpose (refresh, double submit, out-of-order and
forged submissions, malformed JSON, invalid choices, leaving and coming back), and
afterwards nothing is lost or duplicated."""
import numpy as np
import pytest

from studies.models import Participant, Response, Trial
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"
BOTS = 50
TRIALS = 3
PRACTICE = 1


def post(client, url, body):
    return client.post(url, body, content_type=JSON)


def run_bot(client, kind, i, rng, other_trial_keys, sent):
    pid = f"bot-{kind}-{i}"
    r = post(client, f"/api/studies/{kind}/participations/", {"consent": True, "PROLIFIC_PID": pid,
                                                              "STUDY_ID": "s", "SESSION_ID": f"x{i}"})
    assert r.status_code == 201, r.content
    token = r.json()["token"]
    base = f"/api/participations/{token}"
    answered = 0
    while True:
        r = client.get(f"{base}/next/", {"embed": "0"} if i % 2 else {})
        assert r.status_code == 200
        if r.json()["done"]:
            break
        t = r.json()["trial"]
        assert t["position"] == answered  # resumes exactly where it left off
        other_trial_keys.append(t["trial"])
        value = t["options"][int(rng.integers(len(t["options"])))]["value"]
        body = {"trial": t["trial"], "answer": value, "response_time_ms": int(rng.integers(300, 5000)),
                "playback": {"measured_duration_ms": 6000.0, "frames_drawn": 180, "late_frames": 0,
                             "page_hidden": False}}
        behaviour = (i + answered) % 7
        if behaviour == 1:  # refresh before answering: same trial again
            assert client.get(f"{base}/next/").json()["trial"]["trial"] == t["trial"]
        elif behaviour == 2:  # out of order: answer a later trial first
            later = Trial.objects.filter(participant__token=token, position=t["position"] + 1).first()
            if later:
                assert post(client, f"{base}/answers/", {**body, "trial": later.key,
                                                          "answer": later.options[0]["value"]}).status_code == 403
        elif behaviour == 3:  # forged: another participant's trial
            forged = next((k for k in other_trial_keys[:-1]
                           if not Trial.objects.filter(key=k, participant__token=token).exists()), None)
            if forged:
                assert post(client, f"{base}/answers/", {**body, "trial": forged}).status_code == 403
        elif behaviour == 4:  # malformed JSON and an invalid choice
            assert client.post(f"{base}/answers/", '{"trial": ', content_type=JSON).status_code == 400
            assert post(client, f"{base}/answers/", {**body, "answer": "both"}).status_code == 400
        elif behaviour == 5:  # leave and come back through the study link: the same Prolific session resumes,
            # the PROLIFIC_PID alone does not (anyone may know it)
            start = f"/api/studies/{kind}/participations/"
            again = post(client, start, {"consent": True, "PROLIFIC_PID": pid, "SESSION_ID": f"x{i}"})
            assert again.status_code == 200 and again.json()["token"] == token
            assert post(client, start, {"consent": True, "PROLIFIC_PID": pid}).status_code == 409
        r = post(client, f"{base}/answers/", body)
        assert r.status_code == 201, r.content
        sent[t["trial"]] = (value, body["response_time_ms"])
        if behaviour == 6:  # double click
            assert post(client, f"{base}/answers/", body).json()["duplicate"] is True
        answered += 1
    r = client.post(f"{base}/complete/")
    assert r.status_code == 200 and r.json()["completion_code"]
    return answered


@pytest.mark.parametrize("kind", ["deceitfulness", "naturalness", "indistinguishability", "comparison"])
def test_fifty_bots_lose_and_duplicate_nothing(client, kind):
    make_samples(num_clips=4, num_frames=20)
    make_study(kind, trials_per_participant=TRIALS, practice_trials=PRACTICE)
    rng = np.random.default_rng(0)
    seen = []
    sent = {}
    counts = [run_bot(client, kind, i, rng, seen, sent) for i in range(BOTS)]
    assert counts == [TRIALS + PRACTICE] * BOTS
    assert Participant.objects.count() == BOTS
    assert Trial.objects.count() == BOTS * (TRIALS + PRACTICE)
    assert Response.objects.count() == BOTS * (TRIALS + PRACTICE)
    assert not Trial.objects.filter(response__isnull=True).exists()
    assert not Participant.objects.filter(status__in=[Participant.ACTIVE, Participant.ABANDONED]).exists()
    for r in Response.objects.select_related("trial")[:20]:
        assert r.participant_id == r.trial.participant_id and r.answer in r.trial.option_values()
    # every accepted answer is stored as sent, on the trial it was sent for
    stored = {k: (a, t) for k, a, t in Response.objects.values_list("trial__key", "answer", "response_time_ms")}
    assert stored == sent
    assert Response.objects.exclude(playback={}).count() == Response.objects.count()
