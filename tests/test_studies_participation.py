"""Participation and ethics rules, by API bots: a code and redirect per outcome, the
PROLIFIC_PID resume rule, full and closing studies, staff test participations, the
consent version, the decline page, withdrawal, the questionnaire, the debrief and the
configuration frozen once a study opens."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from studies import assignment
from studies.models import Participant, Response, Stimulus, Study, Trial
from studies.core.participation_config import consent_version
from studies.protocols import get_protocol
from studies.protocols.base import ConfigurationError
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"
CODES = {"completed": "DONE01", "screened_out": "SCREEN02", "timed_out": "TIME03", "no_consent": "NOC04"}
REDIRECTS = {"completed": "https://app.prolific.com/submissions/complete?cc={code}",
             "screened_out": "https://app.prolific.com/submissions/screened?cc={code}",
             "timed_out": "https://app.prolific.com/submissions/timeout?cc={code}",
             "no_consent": "https://app.prolific.com/submissions/noconsent?cc={code}&p={PROLIFIC_PID}"}
QUESTIONS = [{"name": "age_band", "label": "Age", "choices": ["18-29", "30-49", "50+"]},
             {"name": "corrected_vision", "label": "Do you wear glasses or lenses?",
              "choices": [{"value": "yes", "text": "Yes"}, {"value": "no", "text": "No"}]},
             {"name": "mocap", "label": "Experience with motion capture", "choices": ["none", "some", "expert"],
              "required": False}]


@pytest.fixture
def world():
    return make_samples(num_clips=6)


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("researcher", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def start(client, slug, url="/api/studies/{}/participations/", **extra):
    return client.post(url.format(slug), {"consent": True, **extra}, content_type=JSON)


def answer_all(client, token, wrong_sensitivity=False, limit=None):
    """Answer the trials in order (the first option; on sensitivity trials the right one,
    or a wrong one when asked), `limit` of them at most; returns how many were answered."""
    done = 0
    while limit is None or done < limit:
        n = client.get(f"/api/participations/{token}/next/").json()
        if n["done"]:
            break
        t = n["trial"]
        trial = Trial.objects.get(key=t["trial"])
        values = [o["value"] for o in t["options"]]
        value = values[0]
        if trial.condition == "sensitivity" and not trial.is_practice:
            value = next(v for v in values if (v != trial.correct) == wrong_sensitivity)
        r = client.post(f"/api/participations/{token}/answers/",
                        {"trial": t["trial"], "answer": value, "response_time_ms": 900, "playback": {}},
                        content_type=JSON)
        assert r.status_code == 201, r.content
        done += 1
    return done


def complete(client, token):
    return client.post(f"/api/participations/{token}/complete/")


def usage(study):
    return sum(Stimulus.objects.filter(study=study).values_list("usage_count", flat=True))


# ------------------------------------------------------------------ outcome codes


def test_each_outcome_gets_its_own_code_and_redirect(client, world):
    make_study("indistinguishability", trials_per_participant=2, practice_trials=0, sensitivity_share=0.5,
               completion_codes=CODES, redirect_urls=REDIRECTS, abandon_after_minutes=30)
    passed = start(client, "indistinguishability").json()["token"]
    answer_all(client, passed)
    r = complete(client, passed).json()
    assert (r["outcome"], r["completion_code"], r["redirect_url"]) == \
        ("completed", "DONE01", "https://app.prolific.com/submissions/complete?cc=DONE01")

    failed = start(client, "indistinguishability").json()["token"]
    answer_all(client, failed, wrong_sensitivity=True)
    r = complete(client, failed).json()
    assert (r["outcome"], r["completion_code"], r["redirect_url"]) == \
        ("screened_out", "SCREEN02", "https://app.prolific.com/submissions/screened?cc=SCREEN02")
    assert Participant.objects.get(token=failed).status == Participant.SCREENED_OUT
    assert complete(client, failed).json()["completion_code"] == "SCREEN02"  # repeatable

    late = start(client, "indistinguishability").json()["token"]
    answer_all(client, late, limit=1)
    Participant.objects.filter(token=late).update(last_seen_at=timezone.now() - timedelta(hours=1))
    assignment.close_study(Study.objects.get(slug="indistinguishability"))  # releases it: timed out, study closed
    assert Participant.objects.get(token=late).status == Participant.ABANDONED
    assert client.get(f"/api/participations/{late}/next/").status_code == 403  # cannot go on
    r = complete(client, late)
    assert r.status_code == 200, r.content
    assert (r.json()["outcome"], r.json()["completion_code"]) == ("timed_out", "TIME03")
    assert r.json()["redirect_url"].endswith("timeout?cc=TIME03")


def test_single_code_is_the_completed_outcome_and_the_others_differ(world):
    validate = get_protocol("deceitfulness").validate
    config = validate({"completion_code": "ABC123", "redirect_url": "https://x.example/?cc={code}"})
    codes = config["completion_codes"]
    assert codes["completed"] == "ABC123" and len({codes["completed"], codes["screened_out"],
                                                   codes["timed_out"]}) == 3
    assert validate(config) == config  # stored once, the same on every read
    assert validate({"completion_codes": {"completed": "XYZ"}})["completion_code"] == "XYZ"
    for bad, word in (({"completion_codes": {"finished": "A"}}, "finished"),
                      ({"completion_code": "A", "completion_codes": {"completed": "B"}}, "differ"),
                      ({"completion_codes": {"screened_out": "A", "timed_out": "A"}}, "differ"),
                      ({"questionnaire": [{"name": "Age", "label": "Age", "choices": ["a"]}]}, "name"),
                      ({"questionnaire": [{"name": "age", "label": "Age", "choices": []}]}, "choices")):
        with pytest.raises(ConfigurationError, match=word):
            validate(bad)


def test_a_returning_timed_out_participant_of_an_open_study_is_taken_back(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0, completion_codes=CODES)
    token = start(client, "deceitfulness").json()["token"]
    answer_all(client, token, limit=1)
    Participant.objects.filter(token=token).update(status=Participant.ABANDONED)
    assert complete(client, token).status_code == 409  # reactivated: one trial still to answer
    answer_all(client, token)
    assert complete(client, token).json()["completion_code"] == "DONE01"


# ------------------------------------------------------------------ PROLIFIC_PID rules


def test_a_prolific_pid_alone_never_hands_over_a_participation(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    first = start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="sess-A")
    assert first.status_code == 201
    token = first.json()["token"]
    for other in ({"SESSION_ID": "sess-B"}, {"SESSION_ID": ""}, {"resume_token": "not-the-token"}):
        r = start(client, "deceitfulness", PROLIFIC_PID="pid-1", **other)
        assert r.status_code == 409 and "same browser" in r.json()["detail"], other
        assert "token" not in r.json()
    same_session = start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="sess-A")
    assert same_session.status_code == 200 and same_session.json()["token"] == token
    same_browser = start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="sess-C", resume_token=token)
    assert same_browser.status_code == 200 and same_browser.json()["token"] == token
    # The token belongs to pid-1: another PID sending it starts afresh, it takes nothing over.
    other_pid = start(client, "deceitfulness", PROLIFIC_PID="pid-2", resume_token=token)
    assert other_pid.status_code == 201 and other_pid.json()["token"] != token
    assert Participant.objects.count() == 2


def test_blank_session_ids_never_match(world):
    study = make_study("deceitfulness", trials_per_participant=1, practice_trials=0)
    assignment.start_participation(study, prolific_pid="pid-9")
    with pytest.raises(assignment.ParticipationConflict):
        assignment.start_participation(study, prolific_pid="pid-9", prolific_session_id="")


# ------------------------------------------------------------------ full and closing studies


def test_a_full_study_lets_its_own_participants_return_and_finish(client, world):
    make_study("deceitfulness", trials_per_participant=2, practice_trials=0, target_participants=1)
    token = start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="s1").json()["token"]
    assert start(client, "deceitfulness", PROLIFIC_PID="pid-2").status_code == 403  # newcomer: full
    again = start(client, "deceitfulness", PROLIFIC_PID="pid-1", SESSION_ID="s1")
    assert again.status_code == 200 and again.json()["token"] == token
    answer_all(client, token)
    assert complete(client, token).json()["outcome"] == "completed"


def test_closing_lets_active_participants_finish_then_closes(client, world):
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    a = start(client, "deceitfulness").json()["token"]
    b = start(client, "deceitfulness", PROLIFIC_PID="pid-b", SESSION_ID="sb").json()["token"]
    assignment.close_study(study)
    assert Study.objects.get(pk=study.pk).status == Study.CLOSING
    refused = start(client, "deceitfulness")
    assert refused.status_code == 403 and "not taking new participants" in refused.json()["detail"]
    assert start(client, "deceitfulness", PROLIFIC_PID="pid-b", SESSION_ID="sb").json()["token"] == b  # resume
    assert client.get("/study/deceitfulness/").status_code == 200  # the page still serves its own
    answer_all(client, a)
    assert complete(client, a).json()["outcome"] == "completed"
    assert Study.objects.get(pk=study.pk).status == Study.CLOSING  # b is still active
    answer_all(client, b)
    complete(client, b)
    study.refresh_from_db()
    assert study.status == Study.CLOSED and study.closed_at is not None
    assert client.get("/study/deceitfulness/").status_code == 410


def test_closing_ends_when_the_last_active_one_times_out_or_on_close_now(client, world):
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0, abandon_after_minutes=30)
    token = start(client, "deceitfulness").json()["token"]
    assignment.close_study(study)
    assert study.status == Study.CLOSING
    Participant.objects.filter(token=token).update(last_seen_at=timezone.now() - timedelta(hours=1))
    assert assignment.release_abandoned(study) == 1
    assert Study.objects.get(pk=study.pk).status == Study.CLOSED

    other = make_study("naturalness", trials_per_participant=2, practice_trials=0)
    start(client, "naturalness")
    assignment.close_study(other, now=True)
    assert Study.objects.get(pk=other.pk).status == Study.CLOSED
    empty = make_study("comparison", trials_per_participant=2, practice_trials=0)
    assignment.start_participation(empty, is_test=True)
    assignment.close_study(empty)
    assert empty.status == Study.CLOSED  # nobody active but a researcher's test run: closed at once


def test_admin_close_actions(staff_client, world):
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    assignment.start_participation(study)
    url = reverse("admin:studies_study_changelist")
    staff_client.post(url, {"action": "close_studies", "_selected_action": [study.pk]})
    assert Study.objects.get(pk=study.pk).status == Study.CLOSING
    staff_client.post(url, {"action": "close_now", "_selected_action": [study.pk]})
    assert Study.objects.get(pk=study.pk).status == Study.CLOSED


def test_admin_open_action_reports_a_pool_too_small_and_leaves_the_study_a_draft(staff_client, world):
    """6 clips cannot give 10 trials without repeating a clip: the admin says so with the
    numbers (no server error) and the study stays a draft; a study that fits opens."""
    small = make_study("deceitfulness", slug="too-many", status="draft", trials_per_participant=10,
                       practice_trials=0)
    fits = make_study("deceitfulness", slug="fits", status="draft", trials_per_participant=2, practice_trials=0)
    url = reverse("admin:studies_study_changelist")
    r = staff_client.post(url, {"action": "open_studies", "_selected_action": [small.pk, fits.pk]}, follow=True)
    assert r.status_code == 200
    text = " ".join(str(m) for m in r.context["messages"])
    assert "too-many" in text and "6 distinct clips" in text and "10 trials" in text and "Opened: fits" in text
    assert Study.objects.get(pk=small.pk).status == Study.DRAFT
    assert Study.objects.get(pk=fits.pk).status == Study.OPEN


# ------------------------------------------------------------------ test participations


def test_test_participations_are_staff_only_flagged_and_never_count(client, staff_client, world):
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0, target_participants=1)
    anonymous = client.__class__()
    r = start(anonymous, "deceitfulness", test=True)
    assert r.status_code == 403 and "staff" in r.json()["detail"]
    r = start(staff_client, "deceitfulness", test=True, PROLIFIC_PID="pid-real")
    assert r.status_code == 201 and r.json()["is_test"] is True
    test_one = Participant.objects.get(token=r.json()["token"])
    assert test_one.is_test and test_one.prolific_pid == ""  # never takes a real participant's id
    assert usage(study) == 0  # shown stimuli do not change what real participants get
    assert start(staff_client, "deceitfulness", test=True).status_code == 201  # the target ignores tests
    real = start(anonymous, "deceitfulness", PROLIFIC_PID="pid-real")
    assert real.status_code == 201 and real.json()["is_test"] is False  # room: tests did not fill it
    assert start(anonymous, "deceitfulness").status_code == 403  # now the one real place is taken
    assert usage(study) == 2

    page = staff_client.get("/study/deceitfulness/?test=1").content.decode()
    assert '"test": true' in page and "test-banner" in page
    assert '"test": false' in anonymous.get("/study/deceitfulness/?test=1").content.decode()
    listing = staff_client.get(reverse("admin:studies_participant_changelist") + "?is_test__exact=1")
    assert listing.status_code == 200 and test_one.pseudonym in listing.content.decode()
    assert "test run" in staff_client.get(reverse("admin:studies_study_changelist")).content.decode()


# ------------------------------------------------------------------ consent, decline, withdrawal


def test_consent_version_is_stored_with_each_participant(client, world):
    make_study("deceitfulness", trials_per_participant=1, practice_trials=0, consent_text="I agree (v1).")
    make_study("naturalness", trials_per_participant=1, practice_trials=0, consent_version="ethics-2026-04")
    p = Participant.objects.get(token=start(client, "deceitfulness").json()["token"])
    assert p.consent_version == consent_version({"consent_text": "I agree (v1).", "consent_version": ""})
    assert len(p.consent_version) == 10
    assert client.get("/api/studies/deceitfulness/").json()["consent_version"] == p.consent_version
    q = Participant.objects.get(token=start(client, "naturalness").json()["token"])
    assert q.consent_version == "ethics-2026-04"
    draft = make_study("comparison", status="draft", consent_text="old text")
    before = draft.consent_version
    draft.configuration = {**draft.configuration, "consent_text": "new text"}
    draft.save()
    assert Study.objects.get(pk=draft.pk).consent_version != before  # a new text is a new version


def test_declining_creates_nothing_and_shows_the_no_consent_exit(client, world):
    make_study("deceitfulness", trials_per_participant=1, completion_codes=CODES, redirect_urls=REDIRECTS)
    page = client.get("/study/deceitfulness/").content.decode()
    assert "I do not agree" in page and "/study/deceitfulness/declined/" in page
    r = client.get("/study/deceitfulness/declined/?PROLIFIC_PID=p%201")
    body = r.content.decode()
    assert r.status_code == 200 and "NOC04" in body
    assert "https://app.prolific.com/submissions/noconsent?cc=NOC04&amp;p=p%201" in body
    assert Participant.objects.count() == 0
    make_study("naturalness", trials_per_participant=1)  # nothing configured: no code, no redirect
    plain = client.get("/study/naturalness/declined/").content.decode()
    assert "no-consent-code" not in plain and "no-consent-link" not in plain


def test_withdrawal_deletes_the_participation_and_returns_its_stimuli(client, world):
    study = make_study("deceitfulness", trials_per_participant=3, practice_trials=1)
    keep = start(client, "deceitfulness").json()["token"]
    before = usage(study)
    token = start(client, "deceitfulness").json()["token"]
    assert usage(study) == before + 3
    answer_all(client, token, limit=2)
    r = client.delete(f"/api/participations/{token}/")
    assert r.status_code == 204
    assert not Participant.objects.filter(token=token).exists()
    assert Response.objects.filter(participant__token=token).count() == 0 and Response.objects.count() == 0
    assert usage(study) == before  # answered and unanswered stimuli back in the pool
    assert client.get(f"/api/participations/{token}/").status_code == 404
    assert client.delete(f"/api/participations/{token}/").status_code == 404
    assert Participant.objects.filter(token=keep).exists()
    # An abandoned one gave its unanswered stimuli back already: only the answered ones return now.
    late = start(client, "deceitfulness").json()["token"]
    answer_all(client, late, limit=2)  # practice + one main trial
    Participant.objects.filter(token=late).update(last_seen_at=timezone.now() - timedelta(hours=2))
    assignment.release_abandoned(study)
    assert usage(study) == before + 1
    assignment.withdraw(Participant.objects.get(token=late))
    assert usage(study) == before
    page = client.get("/study/deceitfulness/").content.decode()
    assert "Delete my data" in page


# ------------------------------------------------------------------ questionnaire and debrief


def test_questionnaire_is_validated_against_its_choices_and_stored(client, world):
    make_study("deceitfulness", trials_per_participant=1, practice_trials=0, questionnaire=QUESTIONS)
    public = client.get("/api/studies/deceitfulness/").json()["questionnaire"]
    assert [q["name"] for q in public] == ["age_band", "corrected_vision", "mocap"]
    assert public[0]["choices"][0] == {"value": "18-29", "text": "18-29"} and public[2]["required"] is False
    r = start(client, "deceitfulness", questionnaire={"age_band": "12-17", "shoe_size": "44"})
    assert r.status_code == 400
    errors = r.json()["questionnaire"]
    assert "Invalid choice" in errors["age_band"][0] and "not a question" in errors["shoe_size"][0]
    r = start(client, "deceitfulness", questionnaire={"age_band": "50+"})
    assert r.status_code == 400 and "needs an answer" in r.json()["questionnaire"]["corrected_vision"][0]
    assert Participant.objects.count() == 0
    ok = start(client, "deceitfulness", questionnaire={"age_band": "30-49", "corrected_vision": "no"})
    assert ok.status_code == 201
    assert Participant.objects.get().questionnaire == {"age_band": "30-49", "corrected_vision": "no"}
    page = client.get("/study/deceitfulness/").content.decode()
    assert 'data-question="age_band"' in page and "Experience with motion capture" in page


def test_debrief_text_comes_with_the_completion(client, world):
    make_study("deceitfulness", trials_per_participant=1, practice_trials=0,
               debrief_text="Some motions were changed by a computer program.")
    token = start(client, "deceitfulness").json()["token"]
    answer_all(client, token)
    assert complete(client, token).json()["debrief_text"] == "Some motions were changed by a computer program."


# ------------------------------------------------------------------ configuration frozen


def test_configuration_is_frozen_once_the_study_opens(staff_client, world):
    study = make_study("deceitfulness", status="draft", trials_per_participant=2)
    study.configuration = {**study.configuration, "trials_per_participant": 3}
    study.save()  # a draft may change
    assignment.open_study(study)
    study = Study.objects.get(pk=study.pk)
    study.configuration = {**study.configuration, "trials_per_participant": 4, "playback_seconds": 3.0}
    with pytest.raises(ValidationError) as refused:
        study.save()
    assert "playback_seconds" in str(refused.value) and "trials_per_participant" in str(refused.value)
    assert Study.objects.get(pk=study.pk).config["trials_per_participant"] == 3
    study = Study.objects.get(pk=study.pk)
    study.status = Study.DRAFT
    with pytest.raises(ValidationError, match="draft"):
        study.save()
    study = Study.objects.get(pk=study.pk)
    study.name = "renamed"
    study.save()  # the name is not part of what the answers were collected under
    assignment.close_study(study)  # status changes still work
    page = staff_client.get(reverse("admin:studies_study_change", args=[study.pk])).content.decode()
    assert 'name="configuration"' not in page and 'name="kind"' not in page
    draft = make_study("naturalness", status="draft", trials_per_participant=2)
    page = staff_client.get(reverse("admin:studies_study_change", args=[draft.pk])).content.decode()
    assert 'name="configuration"' in page
