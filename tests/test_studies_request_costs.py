"""What one participant request costs the database, pinned so that it cannot creep back:
a fixed number of queries per next-trial and answer (no per-request counts, no N+1 over
trials or motions), `last_seen_at` written at most once per `touch_interval` instead of
on every request, and abandonment release that allows for that lag; the embedded
motions sent as the cache holds them."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from studies import assignment

from studies import views
from studies.models import Participant, Trial
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"
PLAYBACK = {"measured_duration_ms": 6000.0, "frames_drawn": 180, "late_frames": 0, "page_hidden": False}


@pytest.fixture
def study():
    make_samples(num_clips=10)
    return make_study("indistinguishability", trials_per_participant=4, practice_trials=1)


def start(client, slug="indistinguishability", pid="P1"):
    r = client.post(f"/api/studies/{slug}/participations/", {"consent": True, "PROLIFIC_PID": pid},
                    content_type=JSON)
    assert r.status_code == 201, r.content
    return r.json()["token"]


def answer(client, token, trial):
    return client.post(f"/api/participations/{token}/answers/",
                       {"trial": trial["trial"], "answer": trial["options"][0]["value"], "response_time_ms": 1400,
                        "playback": PLAYBACK}, content_type=JSON)


def warm_process_caches(token):
    """The per-process memos (motion shape and body, a sample's dataset, the skeleton)
    filled for every trial, as they are on a server that has run for a while."""
    participant = Participant.objects.select_related("study").get(token=token)
    for trial in participant.trials.select_related("left", "right"):
        views.trial_payload(trial, participant.study, 0, embed=True)


def test_next_trial_and_answer_take_a_fixed_number_of_queries(client, study, django_assert_num_queries):
    token = start(client)
    warm_process_caches(token)
    for position in range(5):  # a practice trial and four main ones: the same cost for each
        # participation with its progress (one query), the current trial with its motion
        # handles, and the one write that marks it served
        with django_assert_num_queries(3):
            trial = client.get(f"/api/participations/{token}/next/").json()["trial"]
        assert trial["position"] == position and trial["total"] == 5
        with django_assert_num_queries(2):  # a reload: already served, nothing written
            assert client.get(f"/api/participations/{token}/next/").json()["trial"]["trial"] == trial["trial"]
        # participation, the trial by key, and the answer (SAVEPOINT, INSERT, RELEASE
        # inside the test's transaction; BEGIN/INSERT/COMMIT on a server)
        with django_assert_num_queries(5):
            r = answer(client, token, trial)
        assert r.status_code == 201 and r.json()["remaining"] == 4 - position
    with django_assert_num_queries(3):  # a repeat: participation, the trial with its answer, a count
        r = answer(client, token, trial)
    assert r.status_code == 200 and r.json()["duplicate"] and r.json()["remaining"] == 0
    with django_assert_num_queries(2):
        assert client.get(f"/api/participations/{token}/next/").json()["done"]


def test_query_counts_do_not_grow_with_the_study(client, study, django_assert_num_queries):
    """Other participants and their answers change nothing in one participant's costs."""
    for i in range(3):
        other = start(client, pid=f"other-{i}")
        warm_process_caches(other)
        trial = client.get(f"/api/participations/{other}/next/").json()["trial"]
        answer(client, other, trial)
    token = start(client, pid="P-last")
    warm_process_caches(token)
    with django_assert_num_queries(3):
        trial = client.get(f"/api/participations/{token}/next/").json()["trial"]
    with django_assert_num_queries(5):
        assert answer(client, token, trial).status_code == 201
    with django_assert_num_queries(1):  # progress comes with the participation
        state = client.get(f"/api/participations/{token}/").json()
    assert (state["answered"], state["total"]) == (1, 5)


def test_last_seen_is_written_at_most_once_per_interval(client, study):
    token = start(client)
    participant = Participant.objects.get(token=token)
    assert assignment.touch_interval(participant.study.config) == timedelta(seconds=60)
    first_seen = participant.last_seen_at
    trial = client.get(f"/api/participations/{token}/next/").json()["trial"]
    answer(client, token, trial)
    client.get(f"/api/participations/{token}/next/")
    assert Participant.objects.get(pk=participant.pk).last_seen_at == first_seen  # within the minute: no write
    a_while_ago = timezone.now() - timedelta(seconds=61)
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=a_while_ago)
    client.get(f"/api/participations/{token}/next/")
    seen = Participant.objects.get(pk=participant.pk).last_seen_at
    assert seen > a_while_ago + timedelta(seconds=60)  # older than the interval: written now


def test_touch_interval_is_at_most_a_tenth_of_the_timeout():
    assert assignment.touch_interval({"abandon_after_minutes": 60}) == timedelta(seconds=60)
    assert assignment.touch_interval({"abandon_after_minutes": 2}) == timedelta(seconds=12)


@pytest.mark.parametrize("timeout_minutes", [30, 2])
def test_release_never_comes_before_the_timeout_after_the_last_request(client, timeout_minutes):
    """The last request may not have moved last_seen_at (touch skipped it), yet the
    participant is released only once the timeout has passed since that request, and
    no later than `touch_interval` after it."""
    make_samples(num_clips=10)
    study = make_study("indistinguishability", trials_per_participant=4, practice_trials=0,
                       abandon_after_minutes=timeout_minutes)
    token = start(client)
    participant = Participant.objects.get(token=token)
    interval = assignment.touch_interval(study.config)
    timeout = timedelta(minutes=timeout_minutes)
    t0 = participant.last_seen_at
    last_request = t0 + interval * 0.9
    assert not assignment.touch(participant, now=last_request)  # skipped: last_seen_at stays t0
    assert Participant.objects.get(pk=participant.pk).last_seen_at == t0

    assert assignment.release_abandoned(study, now=last_request + timeout - timedelta(seconds=1)) == 0
    assert Participant.objects.get(pk=participant.pk).status == Participant.ACTIVE
    usage = sum(study.stimuli.values_list("usage_count", flat=True))
    assert assignment.release_abandoned(study, now=t0 + timeout + interval + timedelta(seconds=1)) == 1
    assert Participant.objects.get(pk=participant.pk).status == Participant.ABANDONED
    assert sum(study.stimuli.values_list("usage_count", flat=True)) == usage - 4  # its stimuli went back

    # It comes back: reactivated, its stimuli taken again, and it can go on answering.
    trial = client.get(f"/api/participations/{token}/next/").json()["trial"]
    assert Participant.objects.get(pk=participant.pk).status == Participant.ACTIVE
    assert sum(study.stimuli.values_list("usage_count", flat=True)) == usage
    assert answer(client, token, trial).status_code == 201


def test_embedded_motions_are_the_cached_bodies_verbatim(client, study):
    token = start(client)
    r = client.get(f"/api/participations/{token}/next/")
    assert r["Content-Type"] == "application/json"
    body = r.content.decode()
    trial = json.loads(body)["trial"]
    for ref in trial["motions"]:
        cached = views.motion_json(ref["key"])
        assert cached in body  # spliced in as it is, not re-encoded
        assert ref["motion"] == json.loads(cached) == client.get(ref["url"]).json()
    lean = client.get(f"/api/participations/{token}/next/", {"embed": "0"}).json()["trial"]
    assert all("motion" not in ref for ref in lean["motions"])
    assert {k: v for k, v in lean.items() if k != "motions"} == {k: v for k, v in trial.items() if k != "motions"}
    assert Trial.objects.get(key=trial["trial"]).playback_plan == trial["playback"]


def test_json_response_splices_encoded_parts_and_nothing_else():
    text = '{"a":[1,2],"b":"x"}'
    body = views.json_response({"s": "café", "raw": views.EncodedJSON(text), "list": [views.EncodedJSON("3")],
                                "look_alike": "0:0"}).content.decode()
    assert json.loads(body) == {"s": "café", "raw": {"a": [1, 2], "b": "x"}, "list": [3], "look_alike": "0:0"}
    with pytest.raises(TypeError):
        views.json_response({"x": object()})


@pytest.mark.django_db(transaction=True)
def test_bookkeeping_writes_commit_without_waiting_for_the_disk_and_nothing_else(client):
    """On PostgreSQL the serving time is committed with synchronous_commit off for that
    transaction alone; the connection's setting is unchanged afterwards (answers stay
    durable). Elsewhere an ordinary write. Either way the write is stored."""
    from django.db import connection
    make_samples(num_clips=10)
    make_study("indistinguishability", trials_per_participant=2, practice_trials=0)
    token = start(client)
    trial = client.get(f"/api/participations/{token}/next/").json()["trial"]
    stored = Trial.objects.get(key=trial["trial"])
    assert stored.served_at is not None and stored.playback_plan == trial["playback"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
    assert answer(client, token, trial).status_code == 201


def test_both_rate_limits_take_one_cache_read_and_one_write(client, study, settings):
    from unittest import mock

    from django.core.cache import cache
    settings.PARTICIPANT_THROTTLE_RATES = {"participant_ip": "100/min", "participant_token": "2/min"}
    cache.clear()
    token = start(client)  # no token in the URL: the address limit only
    with mock.patch.object(cache, "get_many", wraps=cache.get_many) as reads, \
            mock.patch.object(cache, "set_many", wraps=cache.set_many) as writes:
        codes = [client.get(f"/api/participations/{token}/next/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    keys = ["throttle_participant_ip_127.0.0.1", f"throttle_participant_token_{token}"]
    assert [c.args[0] for c in reads.call_args_list] == [keys] * 3  # both limits in one read a request
    assert writes.call_count == 3
    # The refused request counts against the address limit, which let it through, not
    # against the token limit, which refused it (DRF's semantics).
    assert len(cache.get("throttle_participant_ip_127.0.0.1")) == 4  # the start too
    assert len(cache.get(f"throttle_participant_token_{token}")) == 2
    settings.PARTICIPANT_THROTTLE_RATES = {"participant_ip": "", "participant_token": ""}
    cache.clear()
