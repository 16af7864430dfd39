"""Simulated participants (studies.simulation, simulate_participants) go through the real
participation path, stay out of the real report, and feed the full report: statistics,
Table 4, the human verdict joined to the motion, and the exports (codebook, design,
Psych-DS folder)."""
from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from attacks.models import AdversarialSample
from studies.models import Participant, Stimulus
from studies.reports import build_report
from studies.simulation import Policy, parse_policy, simulate
from tests.factories import make_samples, make_study

pytestmark = pytest.mark.django_db


def test_policies_parse_or_say_what_is_allowed():
    assert parse_policy("oracle") == Policy("oracle")
    assert parse_policy("noisy:0.25") == Policy("noisy", noise=0.25)
    assert parse_policy("clustered") == Policy("clustered", rate=0.7, icc=0.1)
    assert parse_policy("clustered:0.6,0.2") == Policy("clustered", rate=0.6, icc=0.2)
    for bad in ("noisy", "noisy:2", "clustered:1.5", "oracle:1", "psychic"):
        with pytest.raises(ValueError, match="use random, oracle"):
            parse_policy(bad)


def test_simulated_participants_take_the_study_but_never_the_real_report():
    make_samples(num_clips=12)
    study = make_study("indistinguishability", trials_per_participant=8, practice_trials=0)
    usage = dict(Stimulus.objects.values_list("id", "usage_count"))
    out = StringIO()
    call_command("simulate_participants", study.slug, "--n", "5", "--policy", "oracle", stdout=out)
    assert "5 simulated participants (oracle)" in out.getvalue() and "completed 5" in out.getvalue()
    people = Participant.objects.filter(study=study)
    assert people.count() == 5 and all(p.is_simulated and not p.is_test for p in people)
    assert all(r.flags == [] for p in people for r in p.responses.all())  # simulated time: never early
    assert dict(Stimulus.objects.values_list("id", "usage_count")) == usage  # no stimulus usage taken
    real = build_report(study)
    assert real["exclusions"]["participants"]["total"] == 0 and real["trials_answered"] == 0
    sim = build_report(study, simulated=True)
    assert sim["simulated"] is True and sim["exclusions"]["participants"]["analysed"] == 5
    # The oracle calls every attacked motion changed and every original unchanged.
    assert sim["statistics"]["by_method"][0]["rate"] == 0.0
    assert all(row["passed"] for row in sim["statistics"]["screening"])
    table4 = {(r["recognizer"], r["method"]): r for r in sim["table4"]}
    assert table4[("synth-stgcn", "smart")]["attack_success"] == 1.0
    assert table4[("synth-stgcn", "smart")]["indistinguishable"] == 0.0
    assert table4[("synth-stgcn", "smart")]["judgements"] == sum(
        1 for p in people for t in p.trials.all() if t.condition == "smart")
    with pytest.raises(CommandError, match="use random"):
        call_command("simulate_participants", study.slug, "--n", "1", "--policy", "psychic")


def test_random_answers_fail_the_sensitivity_screen():
    make_samples(num_clips=24)
    study = make_study("indistinguishability", trials_per_participant=20, practice_trials=0)
    people = simulate(study, 6, parse_policy("random"), seed=1)
    assert sum(p.status == Participant.SCREENED_OUT for p in people) >= 4  # 80% on ~10 coin flips is rare


def test_clustered_participants_give_the_rate_with_a_participant_aware_interval():
    make_samples(num_clips=40)
    study = make_study("deceitfulness", trials_per_participant=30, practice_trials=0)
    simulate(study, 30, parse_policy("clustered:0.7,0.2"), seed=3)
    row = build_report(study, simulated=True)["statistics"]["overall"][0]
    assert row["n"] == 900 and row["participants"] == 30
    assert 0.6 < row["rate"] < 0.8
    assert row["boot_high"] - row["boot_low"] > 1.5 * (row["high"] - row["low"])  # ICC 0.2, 30 trials each
    assert 0.05 < row["icc"] < 0.4


def test_the_full_report_joins_answers_to_motion_metrics_and_exports_a_codebook(tmp_path):
    make_samples(num_clips=16, methods=("smart", "l2", "l2-acc", "l2-bone"))
    rng = np.random.default_rng(0)
    for sample in AdversarialSample.objects.all():
        sample.acceleration_deviation = float(rng.lognormal(0, 0.6))
        sample.bone_length_error = float(rng.lognormal(-6, 0.3))
        sample.save(update_fields=["acceleration_deviation", "bone_length_error"])
    study = make_study("naturalness", trials_per_participant=16, practice_trials=0,
                       questionnaire=[{"name": "age_band", "label": "Age", "choices": ["18-29", "30+"]}])
    # The oracle prefers the motion with the smaller acceleration deviation; 20% noise.
    simulate(study, 20, parse_policy("noisy:0.2"), seed=5)
    report = build_report(study, tmp_path, simulated=True)
    verdicts = {r["metric"]: r for r in report["verdicts"]["univariate"]}
    assert report["verdicts"]["outcome"] == "judged_less_natural"
    assert verdicts["acceleration_deviation"]["odds_ratio"] > 2 and verdicts["acceleration_deviation"]["p"] < 1e-4
    assert "mean_displacement" in report["verdicts"]["constant"]  # the fixture's displacements do not vary
    for name in ("trials.csv", "participants.csv", "stimuli.csv", "codebook.csv", "design.json",
                 "naturalness_verdicts_by_metric.png", "psychds/dataset_description.json"):
        assert name in report["files"] and (tmp_path / name).exists(), name
    assert (tmp_path / "naturalness_verdicts_by_metric.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stimuli = pd.read_csv(tmp_path / "stimuli.csv", encoding="utf-8-sig")
    assert stimuli["judgements"].sum() == report["verdicts"]["judgements"]
    book = pd.read_csv(tmp_path / "codebook.csv", encoding="utf-8-sig", keep_default_na=False)
    blank = book[book["meaning"] == ""]
    assert blank.empty, blank  # every exported column is described
    for name in ("trials.csv", "participants.csv", "stimuli.csv"):
        header = pd.read_csv(tmp_path / name, encoding="utf-8-sig", nrows=0).columns
        assert list(book.loc[book["file"] == name, "column"]) == list(header)
    assert "'left', 'right' or 'cannot_tell'" in book.set_index(["file", "column"]).loc[("trials.csv", "answer"),
                                                                                       "meaning"]
    assert "q_age_band" in set(book["column"])
    design = json.loads((tmp_path / "design.json").read_text())
    assert len(design["participants"]) == 20 and len(design["participants"][0]["trials"]) == 16
    assert design["configuration"]["trials_per_participant"] == 16
    description = json.loads((tmp_path / "psychds" / "dataset_description.json").read_text())
    assert description["@type"] == "Dataset" and len(description["variableMeasured"]) == len(book)
    data = sorted(p.name for p in (tmp_path / "psychds" / "data").iterdir())
    assert data == [f"study-{study.slug}_table-{t}_data.csv" for t in ("participants", "stimuli", "trials")]


def test_admin_report_shows_simulated_participants_only_when_asked(client):
    from django.contrib.auth import get_user_model
    make_samples(num_clips=12)
    study = make_study("indistinguishability", trials_per_participant=8, practice_trials=0)
    simulate(study, 3, parse_policy("oracle"))
    get_user_model().objects.create_superuser("staff", "s@example.org", "pw")
    client.login(username="staff", password="pw")
    url = f"/admin/studies/study/{study.pk}/report/"
    real = client.get(url).content.decode()
    assert "simulated-banner" not in real and "No answers yet." in real
    sim = client.get(url + "?simulated=1").content.decode()
    assert "simulated-banner" in sim and "<h2>table4</h2>" in sim and "data:image/png;base64" in sim


def test_a_simulation_is_reproducible_from_its_seed_real_participants_are_not():
    """Simulated participants draw their trial lists from the simulation's seed, so the same
    seed gives the same designs and answers (a power analysis can be rerun); a real
    participant's seed stays unpredictable."""
    from studies import assignment
    make_samples(num_clips=16, methods=("smart", "l2", "l2-acc", "l2-bone"))
    made = iter(range(10))

    def designs(seed):
        study = make_study("naturalness", slug=f"nat-{next(made)}", trials_per_participant=8, practice_trials=0)
        people = simulate(study, 3, parse_policy("noisy:0.2"), seed=seed)
        return [[(t.left.sample_id, t.right.sample_id if t.right else None, t.response.answer)
                 for t in p.trials.order_by("position")] for p in people]

    first = designs(7)
    assert designs(7) == first and designs(8) != first
    study = make_study("naturalness", slug="nat-real", trials_per_participant=8, practice_trials=0)
    a, _ = assignment.start_participation(study, prolific_pid="REAL-A")
    b, _ = assignment.start_participation(study, prolific_pid="REAL-B")
    assert a.seed != b.seed
