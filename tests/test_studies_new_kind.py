"""Adding a study kind is one module, its registration and its instructions template.

tests/spot_protocol.py is a kind no other file knows about. Registered (and its template
directory made visible, as templates/ is for the built-in kinds), it runs through the
whole path with no other code change: a study is created and opened, its page renders
with the protocol's instructions and viewport captions, a participant is assigned and
served every trial through the API, answers, completes, and the report with its exports
and codebook is built."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.utils import timezone

from studies import assignment
from studies.models import Participant, Study, Trial
from studies.protocols import KINDS, get_protocol, register, unregister
from studies.reports import build_report
from tests import spot_protocol
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db
JSON = "application/json"
TEMPLATES = Path(__file__).parent / "templates"


@pytest.fixture
def spot(settings):
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], TEMPLATES]}]
    register(spot_protocol)
    yield get_protocol("spot")
    unregister("spot")


def test_registration_fills_the_optional_declarations_and_refuses_an_incomplete_module(spot):
    assert "spot" in KINDS and spot.validate({})["trials_per_participant"] == 10
    assert spot.VIEW_LABELS == ["Left", "Right"] and spot.OPTIONS_AFTER_PLAYBACK is False
    assert spot.INSTRUCTIONS_TEMPLATE == "participant/instructions/spot.html"
    assert ("spot", "spot") in Study._meta.get_field("kind").choices
    import types
    with pytest.raises(TypeError, match="lacks"):
        register(types.ModuleType("incomplete"))


def test_a_new_kind_runs_from_study_to_report_with_no_other_change(spot, client, tmp_path):
    make_samples(num_clips=8)
    study = make_study("spot", trials_per_participant=4, practice_trials=1)
    study.full_clean()  # the admin's form validation accepts the registered kind
    assert study.status == Study.OPEN and study.stimuli.count() == 8 * 6 // 6  # smart samples only

    page = client.get("/study/spot/").content.decode()
    assert "One of them was changed" in page and "Which motion was changed?" in page

    started = client.post("/api/studies/spot/participations/", {"consent": True}, content_type=JSON)
    assert started.status_code == 201, started.content
    token = started.json()["token"]
    served = 0
    while not (n := client.get(f"/api/participations/{token}/next/").json())["done"]:
        t = n["trial"]
        assert [m["side"] for m in t["motions"]] == ["left", "right"] and t["prompt"] == "Which motion was changed?"
        key = Trial.objects.get(key=t["trial"]).correct  # a perfect participant
        # ...who watched the whole playback: served long enough ago not to be flagged 'early'
        Trial.objects.filter(key=t["trial"]).update(served_at=timezone.now() - timedelta(minutes=1))
        r = client.post(f"/api/participations/{token}/answers/",
                        {"trial": t["trial"], "answer": key, "response_time_ms": 900, "playback": {}},
                        content_type=JSON)
        assert r.status_code == 201, r.content
        served += 1
    assert served == 5  # practice first, then the main trials
    assert client.post(f"/api/participations/{token}/complete/").json()["outcome"] == "completed"
    assert Participant.objects.get(token=token).status == Participant.COMPLETED

    report = build_report(study, tmp_path)
    assert report["kind"] == "spot" and report["trials_analysed"] == 4, report["exclusions"]
    assert report["statistics"]["overall"][0]["rate"] == 1.0
    assert "table4" not in report and report["verdicts"]["judgements"] == 0
    trials = pd.read_csv(tmp_path / "trials.csv", encoding="utf-8-sig")
    assert set(trials.loc[~trials["is_practice"], "method"]) == {"smart"}
    book = pd.read_csv(tmp_path / "codebook.csv", encoding="utf-8-sig", keep_default_na=False)
    assert book[book["meaning"] == ""].empty
    assert "'left' or 'right'" in book.set_index(["file", "column"]).loc[("trials.csv", "answer"), "meaning"]
    assignment.close_study(study)
    assert Study.objects.get(pk=study.pk).status == Study.CLOSED


def test_models_import_no_service():
    """The dependency runs one way: studies.assignment imports the models, never the reverse."""
    import ast
    import studies.models
    tree = ast.parse(Path(studies.models.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | \
        {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {"studies.assignment", "studies.reports", "studies.simulation"} & imported
