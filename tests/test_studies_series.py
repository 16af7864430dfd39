"""Study series by API bots: one link, one consent and one code for several studies in
sequence; screening out in any study excludes the person from all of them; the
create_series command, the series page, resume rules and withdrawal."""
import io

import pytest
from django.core.management import CommandError, call_command

from studies.models import Participant, Response, SeriesParticipant, Stimulus, StudySeries
from tests.factories import make_samples, make_study
from tests.test_studies_participation import QUESTIONS, answer_all, complete, start

pytestmark = pytest.mark.django_db
SERIES_URL = "/api/series/{}/participations/"
SERIES_CODES = {"completed": "SERIES1", "screened_out": "SERIESX", "timed_out": "SERIEST"}


@pytest.fixture
def series():
    make_samples(num_clips=6)
    make_study("deceitfulness", slug="part-a", trials_per_participant=2, practice_trials=0,
               completion_code="STUDYA", debrief_text="Study A's debrief.")
    make_study("indistinguishability", slug="part-b", trials_per_participant=2, practice_trials=0,
               sensitivity_share=0.5)
    make_study("naturalness", slug="part-c", trials_per_participant=2, practice_trials=0)
    out = io.StringIO()
    call_command("create_series", "Paper trio", "--studies", "part-a,part-b,part-c", "--config",
                 '{"completion_codes": {"completed": "SERIES1", "screened_out": "SERIESX", "timed_out": "SERIEST"},'
                 ' "redirect_urls": {"completed": "https://p.example/done?cc={code}",'
                 ' "screened_out": "https://p.example/screened?cc={code}"},'
                 ' "consent_version": "series-v1", "debrief_text": "All motions explained."}', stdout=out)
    assert "/series/paper-trio/" in out.getvalue()
    return StudySeries.objects.get(slug="paper-trio")


def test_create_series_orders_the_studies_and_checks_its_input(series):
    assert [s.slug for s in series.ordered_studies()] == ["part-a", "part-b", "part-c"]
    assert series.config["completion_codes"]["completed"] == "SERIES1"
    with pytest.raises(CommandError, match="no such studies: nope"):
        call_command("create_series", "Other", "--studies", "part-a,nope")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_series", "Paper trio", "--studies", "part-a")
    with pytest.raises(CommandError, match="twice"):
        call_command("create_series", "Again", "--studies", "part-a,part-a")


def test_one_consent_runs_every_study_in_turn_and_ends_with_the_series_code(client, series):
    r = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-7", SESSION_ID="s-7")
    assert r.status_code == 201, r.content
    state = r.json()
    assert (state["status"], state["part"], state["parts"]) == ("active", 1, 3)
    sp = SeriesParticipant.objects.get(token=state["token"])
    assert sp.consent_version == "series-v1" and sp.prolific_pid == "pid-7"
    token = state["next"]["token"]
    assert state["next"]["page_url"] == "/study/part-a/"
    seen = []
    for part, slug in ((1, "part-a"), (2, "part-b"), (3, "part-c")):
        p = Participant.objects.get(token=token)
        assert p.study.slug == slug and p.series_participant == sp and p.consent_version == "series-v1"
        assert p.consent_at == sp.consent_at and p.prolific_pid == "pid-7"
        answer_all(client, token)
        done = complete(client, token).json()
        seen.append(done)
        if part < 3:
            # No study code and no debrief midway: the debrief would give the next study away.
            assert done["completion_code"] == "" and done["debrief_text"] == "" and done["redirect_url"] == ""
            assert done["series"]["next"]["page_url"] == f"/study/{('part-b', 'part-c')[part - 1]}/"
            token = done["series"]["next"]["token"]
    assert (seen[-1]["outcome"], seen[-1]["completion_code"]) == ("completed", "SERIES1")
    assert seen[-1]["redirect_url"] == "https://p.example/done?cc=SERIES1"
    assert seen[-1]["debrief_text"] == "All motions explained."
    assert SeriesParticipant.objects.get(pk=sp.pk).status == SeriesParticipant.COMPLETED
    final = client.get(f"/api/series-participations/{sp.token}/").json()
    assert final["status"] == "completed" and final["completion_code"] == "SERIES1" and "next" not in final


def test_screening_out_in_one_study_excludes_the_person_from_the_whole_series(client, series):
    state = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-8").json()
    token = state["next"]["token"]
    answer_all(client, token)
    token = complete(client, token).json()["series"]["next"]["token"]  # part A completed
    assert Participant.objects.get(token=token).study.slug == "part-b"
    answer_all(client, token, wrong_sensitivity=True)
    r = complete(client, token).json()
    assert (r["outcome"], r["completion_code"]) == ("screened_out", "SERIESX")
    assert r["redirect_url"] == "https://p.example/screened?cc=SERIESX" and "next" not in r["series"]
    sp = SeriesParticipant.objects.get(token=state["token"])
    assert sp.status == SeriesParticipant.SCREENED_OUT
    mine = {p.study.slug: p.status for p in sp.participations.select_related("study")}
    assert mine == {"part-a": "screened_out", "part-b": "screened_out"}  # part C never started
    assert not Participant.objects.filter(study__slug="part-c").exists()
    ended = client.get(f"/api/series-participations/{sp.token}/").json()
    assert ended["status"] == "screened_out" and ended["completion_code"] == "SERIESX"


def test_series_resume_needs_the_same_session_or_token_and_carries_the_questionnaire(client, series):
    series.configuration = {**series.configuration, "questionnaire": QUESTIONS}
    series.save()
    bad = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-9", questionnaire={"age_band": "x"})
    assert bad.status_code == 400 and SeriesParticipant.objects.count() == 0
    answers = {"age_band": "50+", "corrected_vision": "yes"}
    first = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-9", SESSION_ID="A",
                  questionnaire=answers).json()
    assert start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-9", SESSION_ID="B").status_code == 409
    again = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-9", resume_token=first["token"])
    assert again.status_code == 200 and again.json()["next"]["token"] == first["next"]["token"]
    token = first["next"]["token"]
    answer_all(client, token)
    nxt = complete(client, token).json()["series"]["next"]["token"]
    assert Participant.objects.get(token=nxt).questionnaire == answers  # asked once, stored per study
    # The study's own start refuses the PID too, without the session: the series holds it.
    assert start(client, "part-b", PROLIFIC_PID="pid-9", SESSION_ID="other").status_code == 409


def test_series_withdrawal_deletes_every_study_participation(client, series):
    state = start(client, "paper-trio", url=SERIES_URL).json()
    token = state["next"]["token"]
    answer_all(client, token)
    nxt = complete(client, token).json()["series"]["next"]["token"]
    answer_all(client, nxt, limit=1)
    assert client.delete(f"/api/participations/{nxt}/").status_code == 204
    assert Participant.objects.count() == 0 and Response.objects.count() == 0
    assert not SeriesParticipant.objects.exists()
    assert sum(Stimulus.objects.values_list("usage_count", flat=True)) == 0
    other = start(client, "paper-trio", url=SERIES_URL).json()
    assert client.delete(f"/api/series-participations/{other['token']}/").status_code == 204
    assert not SeriesParticipant.objects.exists() and Participant.objects.count() == 0


def test_series_pages(client, series):
    page = client.get("/series/paper-trio/")
    body = page.content.decode()
    assert page.status_code == 200 and "3 parts" in body and "series-v1" in body
    assert "/series/paper-trio/declined/" in body and "participant/series.js" in body
    assert client.get("/series/paper-trio/declined/").status_code == 200
    assert client.get("/series/nope/").status_code == 404
    public = client.get("/api/series/paper-trio/").json()
    assert public["parts"] == 3 and public["consent_version"] == "series-v1"
    study_page = client.get("/study/part-b/").content.decode()
    assert "in this series" in study_page


def test_a_study_taken_outside_the_series_stops_it_with_a_message(client, series):
    start(client, "part-b", PROLIFIC_PID="pid-5", SESSION_ID="s5")  # part B on its own first
    state = start(client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-5", SESSION_ID="s5").json()
    token = state["next"]["token"]
    answer_all(client, token)
    r = complete(client, token)
    assert r.status_code == 409 and "outside this series" in r.json()["detail"]
    assert Participant.objects.get(token=token).status == Participant.COMPLETED  # part A's answers kept


def test_series_admin_lists_the_studies_in_order_and_its_participants(admin_client, series):
    start(admin_client, "paper-trio", url=SERIES_URL, PROLIFIC_PID="pid-1")
    listing = admin_client.get("/admin/studies/studyseries/").content.decode()
    assert "part-a → part-b → part-c" in listing and "1 active" in listing and "test run" in listing
    assert admin_client.get(f"/admin/studies/studyseries/{series.pk}/change/").status_code == 200
    assert "pid-1" in admin_client.get("/admin/studies/seriesparticipant/").content.decode()
