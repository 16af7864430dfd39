"""Who and what the analyses keep (studies.reports): completed, non-test participations by
default, trials with a hidden page / late frames / a wrong duration / an early answer
dropped, participants below the catch threshold excluded, every exclusion counted by
reason (report.json, the command, the admin page); exports with pseudonyms and
spreadsheet-safe cells."""
import csv
import io
import json

import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from attacks.models import Dataset
from studies import assignment
from studies.models import Participant, Response
from studies.reports import analyse, build_report, spreadsheet_safe, trials_csv
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
GOOD_LOG = {"measured_duration_ms": 6000.0, "expected_duration_ms": 6000.0, "frames_drawn": 180,
            "late_frames": 0, "page_hidden": False}


def participate(study, answer=lambda t: t.correct or t.options[0]["value"], log=lambda t: GOOD_LOG, finish=True,
                pid=None, **fields):
    p, _ = assignment.start_participation(study, prolific_pid=pid or f"p{Participant.objects.count()}")
    if fields:
        Participant.objects.filter(pk=p.pk).update(**fields)
    for trial in p.trials.order_by("position"):
        assignment.store_answer(p, trial, answer(trial), 900, log(trial))
    return assignment.complete(p) if finish else p


def people(report):
    return report["exclusions"]["participants"]


def test_test_and_partial_participations_are_left_out_unless_partial_ones_are_asked_for(tmp_path, capsys):
    make_samples(num_clips=8)
    study = make_study("deceitfulness", trials_per_participant=4, practice_trials=0)
    participate(study)
    participate(study, is_test=True)
    partial, _ = assignment.start_participation(study, prolific_pid="partial")
    first = partial.trials.order_by("position").first()
    assignment.store_answer(partial, first, first.correct, 900, GOOD_LOG)
    report = build_report(study)
    assert people(report)["by_reason"] == {"test": 1, "partial": 1, "screened_out": 0, "catch": 0}
    assert people(report)["analysed"] == 1 and report["statistics"]["overall"][0]["n"] == 4
    assert report["trials_analysed"] == 4
    wider = build_report(study, include_partial=True)
    assert people(wider)["by_reason"]["partial"] == 0 and wider["statistics"]["overall"][0]["n"] == 5
    call_command("study_report", study.slug, "--include-partial", "--json")
    assert json.loads(capsys.readouterr().out)["exclusions"]["rules"]["include_partial"] is True
    call_command("study_report", study.slug)
    assert "participants: 1 of 3 analysed, 2 excluded (test 1, partial 1" in capsys.readouterr().out


def test_trials_with_a_hidden_page_late_frames_a_wrong_duration_or_an_early_answer_are_dropped():
    make_samples(num_clips=8)
    study = make_study("deceitfulness", trials_per_participant=6, practice_trials=1, max_late_frame_share=0.2,
                       max_duration_error=0.1)
    logs = {1: {**GOOD_LOG, "page_hidden": True},
            2: {**GOOD_LOG, "late_frames": 37},  # 37 / 180 > 0.2
            3: {**GOOD_LOG, "measured_duration_ms": 6700.0},  # 11.7% long
            4: {**GOOD_LOG, "measured_duration_ms": 6500.0, "late_frames": 30}}  # 8.3%, 16.7%: kept
    p = participate(study, log=lambda t: logs.get(t.position, GOOD_LOG))
    early = p.trials.get(position=5)
    Response.objects.filter(trial=early).update(flags=["early"])
    Response.objects.filter(trial__position=0, participant=p).update(playback={"page_hidden": True})  # practice
    report = build_report(study)
    trials = report["exclusions"]["trials"]
    assert trials == {"total": 6, "analysed": 2, "excluded": 4,
                      "by_reason": {"page_hidden": 1, "late_frames": 1, "duration": 1, "early": 1}}
    assert report["statistics"]["overall"][0]["n"] == 2
    _, frame, _ = analyse(study)
    reasons = dict(zip(frame["position"], frame["trial_excluded"]))
    assert reasons == {0: "", 1: "page_hidden", 2: "late_frames", 3: "duration", 4: "", 5: "early", 6: ""}


def test_expected_duration_comes_from_the_servers_plan_before_the_players_log():
    make_samples(num_clips=4)
    study = make_study("deceitfulness", trials_per_participant=2, practice_trials=0)
    p = participate(study, log=lambda t: {**GOOD_LOG, "measured_duration_ms": 2000.0, "expected_duration_ms": 2000.0})
    p.trials.filter(position=0).update(playback_plan={"total_seconds": 6.0})
    report = build_report(study)
    assert report["exclusions"]["trials"]["by_reason"]["duration"] == 1  # 2 s played, 6 s planned


def test_a_participant_below_the_catch_threshold_is_excluded_by_rule(client):
    make_samples(num_clips=12)
    study = make_study("deceitfulness", trials_per_participant=5, practice_trials=0, catch_share=0.8,
                       catch_threshold=0.75)
    good = participate(study)
    wrong_on_catch = lambda t: ("2" if t.correct == "1" else "1") if t.condition == "catch" else t.correct  # noqa: E731
    bad = participate(study, answer=wrong_on_catch)
    report = build_report(study)
    assert people(report)["by_reason"]["catch"] == 1 and people(report)["analysed"] == 1
    catch = {r["participant"]: r for r in report["exclusions"]["catch"]}
    assert catch[good.pseudonym]["catch_accuracy"] == 1.0 and catch[good.pseudonym]["passed"]
    assert catch[bad.pseudonym]["catch_trials"] == 4 and catch[bad.pseudonym]["catch_accuracy"] == 0.0
    overall = report["statistics"]["overall"][0]
    assert (overall["k"], overall["n"]) == (5, 5)  # the good one's main trials only, no catch trials
    # the admin report page shows the exclusions
    User.objects.create_superuser("r", "r@example.org", "pw")
    client.login(username="r", password="pw")
    page = client.get(f"/admin/studies/study/{study.pk}/report/").content.decode()
    assert "Exclusions" in page and 'id="exclusions"' in page and "<th>catch</th>" in page
    assert bad.pseudonym in page


def test_catch_trials_never_enter_the_statistics_of_any_kind():
    make_samples(num_clips=12)
    for kind in ("naturalness", "indistinguishability"):
        study = make_study(kind, trials_per_participant=4, practice_trials=0, catch_share=0.5)
        participate(study, answer=lambda t: t.correct or "left")
        stats = build_report(study)["statistics"]
        if kind == "naturalness":
            assert sum(r["n"] for r in stats["pairs"]) == 4
            assert {r["method"] for r in stats["normalised_preference"]} <= {"smart", "l2", "l2-acc", "l2-bone"}
        else:
            assert sum(r["n"] for r in stats["by_method"]) == 2 and stats["screening"][0]["sensitivity_trials"] == 2


def test_exports_carry_pseudonyms_and_escape_formula_cells(tmp_path):
    make_samples(num_clips=4, num_classes=3)
    Dataset.objects.update(class_names=["=HYPERLINK(\"http://x\")", "+1+2", "@SUM(A1)"])
    study = make_study("deceitfulness", trials_per_participant=3, practice_trials=0)
    p = participate(study, pid="-2+3")
    Participant.objects.filter(pk=p.pk).update(prolific_study_id="\tstudy", prolific_session_id="\rsess")
    build_report(study, tmp_path)
    raw_trials = (tmp_path / "trials.csv").read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(raw_trials)))
    assert {r["participant"] for r in rows} == {p.pseudonym} and "prolific_pid" not in rows[0]
    assert "-2+3" not in raw_trials
    for r in rows:
        for column in ("truth_name", "after_name", "chosen_name"):
            assert r[column][0] == "'" and r[column][1] in "=+@", (column, r[column])
        assert r["options"].startswith("'")
    person = next(csv.DictReader(io.StringIO((tmp_path / "participants.csv").read_bytes().decode("utf-8-sig"),
                                             newline="")))
    assert person["prolific_pid"] == "'-2+3" and person["participant"] == p.pseudonym
    assert person["prolific_study_id"] == "'\tstudy" and person["prolific_session_id"] == "'\rsess"
    # numbers are no formulas: left as numbers
    frame = spreadsheet_safe(pd.DataFrame({"x": [-1.5, 2.0], "s": ["-1", "ok"]}))
    assert frame["x"].tolist() == [-1.5, 2.0] and frame["s"].tolist() == ["'-1", "ok"]
    assert trials_csv(pd.DataFrame({"a": ["=1"]})).decode("utf-8-sig").splitlines()[1] == "'=1"


def test_api_bots_that_hide_the_page_or_drop_frames_lose_those_trials(client):
    make_samples(num_clips=8)
    make_study("indistinguishability", trials_per_participant=6, practice_trials=0)
    hidden = 0
    for i in range(3):
        token = client.post("/api/studies/indistinguishability/participations/",
                            {"consent": True, "PROLIFIC_PID": f"bot{i}", "SESSION_ID": f"s{i}"},
                            content_type="application/json").json()["token"]
        k = 0
        while not (n := client.get(f"/api/participations/{token}/next/").json())["done"]:
            log = {**GOOD_LOG, "page_hidden": k == 0, "late_frames": 90 if k == 1 else 0}
            hidden += k == 0
            body = {"trial": n["trial"]["trial"], "answer": "unchanged", "response_time_ms": 700, "playback": log}
            assert client.post(f"/api/participations/{token}/answers/", body,
                               content_type="application/json").status_code == 201
            k += 1
        assert client.post(f"/api/participations/{token}/complete/").status_code == 200
    report = build_report(Participant.objects.first().study)
    trials = report["exclusions"]["trials"]
    # every bot said 'unchanged' to everything: sensitivity passes, so all three are analysed
    assert report["exclusions"]["participants"]["analysed"] == 3 and trials["total"] == 18
    assert trials["by_reason"]["page_hidden"] == hidden == 3 and trials["by_reason"]["late_frames"] == 3
    # answers sent at once after serving may also be flagged 'early' by the server
    assert trials["analysed"] == 18 - trials["excluded"] and trials["excluded"] >= 6
