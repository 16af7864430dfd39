"""The README's main job, end to end on a small synthetic dataset, twice (it must be idempotent)."""
import io
import logging

import pytest
from django.core.management import call_command

from attacks.models import AdversarialSample, Dataset, GenerationRun, Recognizer, RobustnessReport
from studies.models import Study

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DEMO = dict(data="/nonexistent-so-synthetic", epochs=20, width=8, frames=24, clips=12, iterations=80,
            base_url="http://example.test")


def test_demo_runs_every_step_and_can_run_again(settings, tmp_path, client, caplog, capsys):
    settings.DATA_DIR = tmp_path
    caplog.set_level(logging.INFO, logger="attacks.progress")
    out = io.StringIO()
    call_command("demo", stdout=out, **DEMO)
    text = out.getvalue()
    # Written to a log (not a terminal), progress is a line per epoch or attacked batch,
    # not a progress bar's redraws (the demo's log once held thousands of those).
    progress = [r.getMessage() for r in caplog.records if r.name == "attacks.progress"]
    assert len([line for line in progress if line.startswith("epoch ")]) == DEMO["epochs"]
    assert any(" batch 1/" in line and "fooled=" in line for line in progress)
    assert len(progress) < 100, progress
    assert "\r" not in capsys.readouterr().err
    rec = Recognizer.objects.get(name="synthetic-stgcn")
    # 20 epochs make the synthetic recognizer accurate whatever the thread count, so the 12
    # attacked test clips are (nearly) all correctly classified and the attacks have work to do.
    assert rec.status == "ready" and rec.test_accuracy > 0.8
    assert GenerationRun.objects.filter(status="done").count() == 8
    assert set(GenerationRun.objects.values_list("method", flat=True)) == {
        "smart", "l2", "l2-acc", "l2-bone", "iaa", "ciasa"}
    assert AdversarialSample.objects.filter(method="smart", strategy="ab", success=True).exists()
    report = RobustnessReport.objects.get()
    assert (tmp_path / "reports" / "demo" / "report.md").exists() and report.tables
    # A kind whose protocol finds no suitable stimuli (e.g. naturalness needs SMART and two
    # ablations that all succeeded on one clip) is reported, not created; deceitfulness
    # only needs successful SMART samples and must always be there.
    made = set(Study.objects.values_list("kind", flat=True))
    assert "deceitfulness" in made
    for kind in ("deceitfulness", "naturalness", "indistinguishability", "comparison"):
        if kind in made:
            assert f"http://example.test/study/demo-{kind}/" in text
        else:
            assert f"no {kind} study:" in text
    assert "admin: http://example.test/admin/" in text

    samples = AdversarialSample.objects.count()
    call_command("demo", stdout=io.StringIO(), **DEMO)
    assert Dataset.objects.count() == 1 and Recognizer.objects.count() == 1
    assert AdversarialSample.objects.count() == samples and Study.objects.count() == len(made)

    # The printed links open working studies: the participant page, then a first trial to play.
    for kind in made:
        assert client.get(f"/study/demo-{kind}/").status_code == 200
        r = client.post(f"/api/studies/demo-{kind}/participations/", {"consent": True, "PROLIFIC_PID": "check"},
                        content_type="application/json")
        assert r.status_code == 201, r.content
        trial = client.get(f"/api/participations/{r.json()['token']}/next/").json()["trial"]
        assert trial["motions"] and trial["options"] and trial["skeleton"]["bones"]
