"""Reports, exports, management commands and the researchers' admin pages."""
import csv
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from studies import assignment
from studies.models import Participant, Study
from studies.reports import build_report
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db


def participate(study, answers_for):
    """One participant answering every trial with `answers_for(trial)`, then completing."""
    p, _ = assignment.start_participation(study, prolific_pid=f"PROLIFIC-PID-{Participant.objects.count():04d}")
    for trial in p.trials.order_by("position"):
        assignment.store_answer(p, trial, answers_for(trial), 900, {"frames_drawn": 180})
    return assignment.complete(p)


@pytest.fixture
def indist():
    make_samples(num_clips=11)  # one clip per trial: 10 main + 1 practice
    study = make_study("indistinguishability", trials_per_participant=10, practice_trials=1)
    good = participate(study, lambda t: "unchanged" if t.condition == "sensitivity" else "changed")
    bad = participate(study, lambda t: "changed")  # every original judged changed: screened out
    return study, good, bad


def test_completion_screens_out_low_sensitivity_but_keeps_data(indist):
    study, good, bad = indist
    assert good.status == Participant.COMPLETED and good.sensitivity_accuracy == 1.0
    assert bad.status == Participant.SCREENED_OUT and bad.sensitivity_accuracy == 0.0
    assert bad.responses.count() == 11


def test_practice_sensitivity_trials_do_not_count_towards_screening():
    make_samples(num_clips=6)
    study = make_study("indistinguishability", trials_per_participant=4, practice_trials=2)
    # wrong on every practice trial (one of them a sensitivity trial), right on every main one
    p = participate(study, lambda t: ("changed" if t.correct == "unchanged" else "unchanged") if t.is_practice
                    else t.correct)
    assert p.trials.filter(is_practice=True, condition="sensitivity").exists()
    assert p.status == Participant.COMPLETED and p.sensitivity_accuracy == 1.0
    report = build_report(study)
    assert report["statistics"]["screening"][0]["sensitivity_trials"] == 2


def test_report_statistics_and_files(indist, tmp_path):
    study, good, bad = indist
    report = build_report(study, tmp_path)
    stats = report["statistics"]
    # the screened-out participant is excluded by rule before the statistics, and counted
    assert stats["participants_kept"] == 1 and stats["participants_screened_out"] == 0
    assert report["exclusions"]["participants"]["by_reason"]["screened_out"] == 1
    assert report["exclusions"]["participants"]["analysed"] == 1
    assert [r["participant"] for r in stats["screening"]] == [good.pseudonym]
    row = stats["by_method"][0]
    assert row["method"] == "smart" and row["n"] == 5 and row["rate"] == 0.0  # the kept one saw every change
    assert set(report["files"]) >= {"trials.csv", "participants.csv", "report.json",
                                    "indistinguishability_unchanged_by_method.png"}
    raw = (tmp_path / "trials.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM for spreadsheets
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    # trial rows name participants by pseudonym, never by database id or PROLIFIC_PID
    assert len(rows) == 22 and {r["participant"] for r in rows} == {good.pseudonym, bad.pseudonym}
    assert "prolific_pid" not in rows[0] and good.prolific_pid not in raw.decode("utf-8-sig")
    assert {r["screened_out"] for r in rows if r["participant"] == bad.pseudonym} == {"True"}
    assert {r["participant_excluded"] for r in rows if r["participant"] == bad.pseudonym} == {"screened_out"}
    people = list(csv.DictReader(io.StringIO((tmp_path / "participants.csv").read_bytes().decode("utf-8-sig"))))
    assert [p["screened_out"] for p in people] == ["False", "True"]
    assert [(p["participant"], p["prolific_pid"]) for p in people] == [(good.pseudonym, good.prolific_pid),
                                                                       (bad.pseudonym, bad.prolific_pid)]
    assert json.loads((tmp_path / "report.json").read_text())["kind"] == "indistinguishability"
    assert (tmp_path / "indistinguishability_unchanged_by_method.png").read_bytes().startswith(b"\x89PNG")


def test_naturalness_report_has_figure_two_bars(tmp_path):
    make_samples(num_clips=4)
    study = make_study("naturalness", trials_per_participant=6, practice_trials=0)
    for _ in range(3):
        participate(study, lambda t: "left" if t.design["left_method"] == "smart" else
                    "right" if t.design["right_method"] == "smart" else "cannot_tell")
    report = build_report(study, tmp_path)
    assert report["statistics"]["bradley_terry"][0]["method"] == "smart"
    assert (tmp_path / "naturalness_preference.png").stat().st_size > 1000


def test_deceitfulness_report_counts_ground_truth_choices():
    make_samples(num_clips=7)
    study = make_study("deceitfulness", trials_per_participant=6, practice_trials=1)
    participate(study, lambda t: t.correct)
    report = build_report(study)
    overall = report["statistics"]["overall"][0]
    assert (overall["k"], overall["n"]) == (6, 6)


def test_create_study_command_prints_the_link_and_validates(capsys):
    make_samples(num_clips=10)  # 8 trials + 2 practice, one clip each
    call_command("create_study", "comparison", "--name", "Table 4 replication", "--participants", "20",
                 "--trials", "8", "--datasets", "synth")
    out = capsys.readouterr().out
    study = Study.objects.get()
    assert study.status == "open" and study.config["trials_per_participant"] == 8
    assert study.config["target_participants"] == 20 and study.stimuli.count() == 10
    assert f"/study/{study.slug}/" in out
    with pytest.raises(CommandError, match="no adversarial samples"):
        call_command("create_study", "deceitfulness", "--name", "none", "--datasets", "missing")
    with pytest.raises(CommandError, match="slow_motion|invalid choice"):
        call_command("create_study", "naturalness", "--name", "x", "--slow-motion", "2")


def test_study_report_command_json_and_out(indist, tmp_path, capsys):
    study, _, _ = indist
    call_command("study_report", study.slug, "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["statistics"]["participants_kept"] == 1
    assert data["exclusions"]["participants"]["by_reason"]["screened_out"] == 1
    call_command("study_report", str(study.pk), "--out", str(tmp_path))
    assert "by_method" in capsys.readouterr().out and (tmp_path / "trials.csv").exists()
    with pytest.raises(CommandError):
        call_command("study_report", "nope")


def test_admin_progress_report_exports_and_previews(indist, client):
    study, good, _ = indist
    User.objects.create_superuser("r", "r@example.org", "pw")
    client.login(username="r", password="pw")
    page = client.get("/admin/studies/study/")
    assert page.status_code == 200 and b"screened out" in page.content.lower() and b"report</a>" in page.content
    report = client.get(f"/admin/studies/study/{study.pk}/report/")
    assert report.status_code == 200 and b"data:image/png;base64" in report.content
    csv_export = client.get(f"/admin/studies/study/{study.pk}/export/trials.csv")
    assert csv_export.content.startswith(b"\xef\xbb\xbf") and "attachment" in csv_export["Content-Disposition"]
    assert json.loads(client.get(f"/admin/studies/study/{study.pk}/export/report.json").content)["study"] == study.slug
    trial = good.trials.filter(right__isnull=False).first()
    png = client.get(f"/admin/studies/trial/{trial.pk}/preview.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    stimulus = study.stimuli.first()
    sample = next(iter(stimulus.samples.values()))
    assert client.get(f"/admin/studies/stimulus/{stimulus.pk}/preview/{sample}.png").content.startswith(b"\x89PNG")
    r = client.post("/admin/studies/study/", {"action": "close_studies", "_selected_action": [study.pk]})
    assert r.status_code == 302 and Study.objects.get().status == "closed"
    client.post("/admin/studies/study/", {"action": "open_studies", "_selected_action": [study.pk]})
    assert Study.objects.get().status == "open"
    client.logout()
    assert client.get(f"/admin/studies/study/{study.pk}/export/trials.csv").status_code == 302  # staff only
