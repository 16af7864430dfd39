"""Participants are isolated from each other, researchers' pages need a staff login, and the
participant API is rate-limited per client address and per participation token."""
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import override_settings

from studies.models import Participant, Response
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"


@pytest.fixture
def two_participants(client):
    make_samples(num_clips=5)  # one clip per trial: 3 main + 2 practice
    make_study("deceitfulness", trials_per_participant=3)
    tokens = []
    for pid in ("alice", "bob"):
        r = client.post("/api/studies/deceitfulness/participations/", {"consent": True, "PROLIFIC_PID": pid},
                        content_type=JSON)
        assert r.status_code == 201
        tokens.append(r.json()["token"])
    return tokens


def next_trial(client, token):
    return client.get(f"/api/participations/{token}/next/").json()["trial"]


def answer(client, token, trial_key, value):
    return client.post(f"/api/participations/{token}/answers/",
                       {"trial": trial_key, "answer": value, "response_time_ms": 900,
                        "playback": {"measured_duration_ms": 6000.0, "frames_drawn": 180, "late_frames": 0,
                                     "page_hidden": False}}, content_type=JSON)


def test_a_participant_cannot_answer_or_overwrite_another_participants_trials(client, two_participants):
    alice, bob = two_participants
    bob_trial = next_trial(client, bob)
    value = bob_trial["options"][0]["value"]
    # Alice addresses Bob's trial with her own token: refused, nothing stored for either.
    r = answer(client, alice, bob_trial["trial"], value)
    assert r.status_code == 403 and "another participation" in r.json()["detail"]
    assert Response.objects.count() == 0
    # Bob answers; Alice then tries to change that answer.
    assert answer(client, bob, bob_trial["trial"], value).status_code == 201
    other = bob_trial["options"][1]["value"]
    assert answer(client, alice, bob_trial["trial"], other).status_code == 403
    stored = Response.objects.get()
    assert stored.answer == value and stored.trial.participant.prolific_pid == "bob"


def test_a_participant_only_ever_sees_its_own_trials_and_progress(client, two_participants):
    alice, bob = two_participants
    bob_trial = next_trial(client, bob)
    assert answer(client, bob, bob_trial["trial"], bob_trial["options"][0]["value"]).status_code == 201
    alice_state = client.get(f"/api/participations/{alice}/").json()
    assert alice_state["token"] == alice and alice_state["answered"] == 0  # Bob's answer is not Alice's
    alice_keys = set(Participant.objects.get(prolific_pid="alice").trials.values_list("key", flat=True))
    assert next_trial(client, alice)["trial"] in alice_keys
    assert bob_trial["trial"] not in alice_keys
    # A guessed token reads nothing.
    assert client.get("/api/participations/not-a-real-token/").status_code == 404
    assert client.get("/api/participations/not-a-real-token/next/").status_code == 404


@pytest.mark.parametrize("url", ["/admin/", "/admin/attacks/generationrun/", "/admin/attacks/generationrun/add/",
                                 "/admin/studies/study/", "/study-admin/preview/1/", "/data/reports/x.png"])
def test_researcher_pages_need_a_staff_login(client, url):
    r = client.get(url)
    assert r.status_code == 302 and "/login/" in r["Location"]
    User.objects.create_user("participant", password="pw-123456-long")
    client.login(username="participant", password="pw-123456-long")  # logged in, but not staff
    r = client.get(url)
    assert r.status_code == 302 and "/login/" in r["Location"]


def test_staff_reach_the_generation_admin(admin_client):
    assert admin_client.get("/admin/attacks/generationrun/").status_code == 200
    assert admin_client.get("/admin/attacks/generationrun/add/").status_code == 200


@pytest.fixture
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


@override_settings(PARTICIPANT_THROTTLE_RATES={"participant_ip": "", "participant_token": "3/min"})
def test_each_participation_token_has_its_own_limit(client, two_participants, fresh_counters):
    alice, bob = two_participants
    for _ in range(3):
        assert client.get(f"/api/participations/{alice}/").status_code == 200
    r = client.get(f"/api/participations/{alice}/next/")
    assert r.status_code == 429 and "Retry-After" in r
    # Bob, from the same address, is not affected by Alice's count.
    assert client.get(f"/api/participations/{bob}/").status_code == 200


@override_settings(PARTICIPANT_THROTTLE_RATES={"participant_ip": "4/min", "participant_token": ""})
def test_each_client_address_has_its_own_limit_even_for_unknown_tokens(client, two_participants, fresh_counters):
    alice, _ = two_participants
    for k in range(4):
        r = client.get(f"/api/participations/guess-{k}/", REMOTE_ADDR="10.0.0.1")
        assert r.status_code == 404
    assert client.get(f"/api/participations/guess-9/", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert client.get(f"/api/participations/{alice}/", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert client.get("/api/studies/deceitfulness/", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert client.get(f"/api/participations/{alice}/", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_limits_are_off_when_their_rate_is_empty(client, two_participants, fresh_counters, settings):
    settings.PARTICIPANT_THROTTLE_RATES = {"participant_ip": "", "participant_token": ""}
    alice, _ = two_participants
    assert all(client.get(f"/api/participations/{alice}/").status_code == 200 for _ in range(30))
