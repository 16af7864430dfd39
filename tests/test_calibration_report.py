"""Issue 13 through Django: calibrate_budget against a stored SMART run, CIASA's stored
preparation (discriminator clips outside the attacked ones, angle box enforced), and the
report's new tables and figures (intervals, pairwise matched success, curves, per class,
budget sweep, the paper's layouts)."""
import html

import numpy as np
import pandas as pd
import pytest
import torch
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from attacks.services import generation

from attacks.core import reporting as reports
from attacks.core.methods import bone_bending_angles
from attacks.models import Dataset, GenerationRun, Recognizer, RobustnessReport
from attacks.services.recognition import split_clips

ATTACK = dict(recognizer="cal-tiny", iterations=10, batch_size=8, no_progress=True)


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings

    old = settings.DATA_DIR
    settings.DATA_DIR = tmp_path_factory.mktemp("data")
    with django_db_blocker.unblock():
        call_command("import_dataset", "synthetic", "classes=3,clips=15,frames=30,seed=2", name="cal-syn",
                     no_progress=True)
        call_command("train_recognizer", dataset="cal-syn", arch="stgcn", name="cal-tiny", width=8, epochs=6,
                     frames=24, batch_size=8, lr=0.1, seed=0, no_progress=True)
        call_command("generate_samples", method="smart", strategy="ab", lr=0.02, **ATTACK)
        yield settings.DATA_DIR
        # Outside the tests' transactions: everything made here must go, or later
        # modules (imports, splits) would find it.
        GenerationRun.objects.all().delete()
        Recognizer.objects.all().delete()
        Dataset.objects.filter(name="cal-syn").delete()
    settings.DATA_DIR = old


pytestmark = pytest.mark.django_db


def test_calibrate_budget_stores_every_budget_and_marks_the_chosen_run(trained, capsys):
    smart = GenerationRun.objects.get(method="smart")
    call_command("calibrate_budget", recognizer="cal-tiny", method="iaa", low=0.002, high=0.02, max_high=0.3,
                 precision=0.3, max_evaluations=5, batch_size=8, no_progress=True)
    out = capsys.readouterr().out
    runs = list(GenerationRun.objects.filter(method="iaa"))
    chosen = [r for r in runs if "reference_run" in r.calibration]
    assert len(chosen) == 1 and 2 <= len(runs) <= 5
    cal = chosen[0].calibration
    assert cal["reference_run"] == smart.pk and cal["parameter"] == "epsilon" and len(cal["points"]) == len(runs)
    eps = chosen[0].config["options"]["epsilon"]
    assert chosen[0].config["options"]["step_size"] == pytest.approx(eps / 10)
    assert cal["chosen"]["value"] == eps and f"run {chosen[0].pk}" in out
    ref_rate = smart.samples.filter(success=True).count() / smart.samples.count()
    if cal["reached"]:  # the chosen run reaches the goal; every cheaper budget tried falls short
        assert chosen[0].success_rate() >= ref_rate - 0.01 - 1e-9
        assert all(p["succeeded"] / p["attacked"] < cal["goal"] for p in cal["points"] if p["value"] < eps)
    assert all(r.calibration == {"candidate_of": chosen[0].pk} for r in runs if r is not chosen[0])
    assert {r.config["split"] for r in runs} == {smart.config["split"]} and \
        {r.config["iterations"] for r in runs} == {smart.config["iterations"]}


def test_ciasa_discriminator_never_sees_attacked_clips_and_the_box_holds(trained):
    call_command("generate_samples", method="ciasa", strategy="ab", option=[
        "epsilon=0.05", "step_size=0.01", "discriminator_steps=5", "discriminator_rounds=2",
        "discriminator_attack_steps=2"], **ATTACK)
    run = GenerationRun.objects.get(method="ciasa", calibration={})
    attacked = set(run.samples.values_list("clip_id", flat=True))
    scope = {c.pk for c in split_clips(run.recognizer.split, "test")}
    train = {c.pk for c in split_clips(run.recognizer.split, "train")}
    prep = run.preparation
    assert prep["angle_bounds"] == "train" and prep["clip_part"] == "train"
    assert prep["discriminator_clip_ids"] and set(prep["discriminator_clip_ids"]) <= train
    assert not set(prep["discriminator_clip_ids"]) & (attacked | scope)
    assert set(prep["angle_bounds_clip_ids"]) <= train
    bounds = np.load(generation.discriminator_path(run).with_name("angle_bounds.npy"))
    skeleton = run.recognizer.dataset.get_skeleton()
    lo, hi = bounds[:, 0], bounds[:, 1]
    for s in run.samples.all():
        before = bone_bending_angles(torch.from_numpy(s.original_motion()).double(), skeleton).numpy()
        after = bone_bending_angles(torch.from_numpy(s.adversarial_motion()).double(), skeleton).numpy()
        inside = (before >= lo - 1e-6) & (before <= hi + 1e-6)
        assert ((after[inside] >= lo[np.nonzero(inside)[-1]] - 1e-3) &
                (after[inside] <= hi[np.nonzero(inside)[-1]] + 1e-3)).all()
        # the effective budget is stored with every sample; bone lengths are the original's
        assert s.linf_displacement == pytest.approx(np.abs(s.adversarial_motion() - s.original_motion()).max())
        lengths = [skeleton.bone_lengths(torch.from_numpy(m)) for m in (s.original_motion(), s.adversarial_motion())]
        assert torch.allclose(lengths[0], lengths[1], atol=1e-4)


def test_report_tables_and_figures_of_the_protocol(trained, tmp_path, client):
    call_command("calibrate_budget", recognizer="cal-tiny", method="iaa", low=0.002, high=0.02, max_high=0.3,
                 precision=0.3, max_evaluations=5, batch_size=8, no_progress=True)
    call_command("calibrate_budget", recognizer="cal-tiny", method="smart", sweep=["0.005,0.05"], iterations=10,
                 batch_size=8, no_progress=True)
    out = tmp_path / "rep"
    call_command("robustness_report", out=str(out), name="protocol")
    calibrated = GenerationRun.objects.get(method="iaa", calibration__has_key="reference_run")

    cal = pd.read_csv(out / "calibration.csv")
    assert cal["run_id"].tolist() == [calibrated.pk] and bool(cal["reported"].iloc[0])
    upper = pd.read_csv(out / "table4.csv").set_index("method")
    assert upper.loc["iaa", "calibrated"] and upper.loc["iaa", "budget"] == calibrated.config["options"]["epsilon"]
    assert (upper["ci_low"] <= upper["success_rate"]).all() and (upper["success_rate"] <= upper["ci_high"]).all()
    paper = pd.read_csv(out / "table4_paper.csv")
    assert list(paper.columns[:5]) == ["dataset", "model", "SMART", "IAA", "CIASA"] and paper["calibrated"][0] == "iaa"
    pairs = pd.read_csv(out / "table4_pairwise.csv")
    smart = GenerationRun.objects.get(method="smart", config__options={"lr": 0.02})
    both = set(smart.samples.filter(success=True).values_list("clip_id", flat=True)) & \
        set(calibrated.samples.filter(success=True).values_list("clip_id", flat=True))
    assert pairs.set_index("method").loc["iaa", "matched"] == len(both)

    per_class = pd.read_csv(out / "per_class.csv")
    iaa_classes = per_class[per_class["run_id"] == calibrated.pk]
    assert iaa_classes["attacked"].sum() == calibrated.samples.count()
    assert iaa_classes["succeeded"].sum() == calibrated.samples.filter(success=True).count()
    assert set(iaa_classes["class"]) <= set(calibrated.recognizer.dataset.class_names)

    png = (out / "success_curves_cal-tiny.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(out / "success_curves_cal-tiny.csv")
    iaa = curves[curves["run_id"] == calibrated.pk]
    assert iaa["iteration"].tolist() == list(range(11))  # 0 .. the iteration budget
    won = sorted(calibrated.samples.filter(success=True).values_list("iterations", flat=True))
    assert iaa["succeeded"].tolist() == [sum(w <= k for w in won) for k in range(11)]
    assert iaa["attacked"].iloc[0] == calibrated.samples.count()

    sweep_png = (out / "budget_sweep_cal-tiny.png").read_bytes()
    assert sweep_png[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = pd.read_csv(out / "budget_sweep_cal-tiny.csv")
    iaa_points = sweep[sweep["method"] == "iaa"]
    tried = {p["value"] for p in calibrated.calibration["points"]}
    assert tried <= set(iaa_points["budget"]) and iaa_points["calibrated"].sum() == 1
    smart_points = sweep[sweep["method"] == "smart"]
    assert {0.005, 0.05} <= set(smart_points["budget"]) and set(smart_points["parameter"]) == {"lr"}
    for r in sweep.itertuples():
        run = GenerationRun.objects.get(pk=r.run_id)
        assert r.succeeded == run.samples.filter(success=True).count() and r.attacked == run.samples.count()

    report = RobustnessReport.objects.get(name="protocol")
    assert {"calibration", "table4_paper", "table4_pairwise", "per_class", "budget_sweep"} <= set(report.tables)
    assert any(p.endswith("budget_sweep_cal-tiny.png") for p in report.figures)
    assert any(p.endswith("success_curves_cal-tiny.png") for p in report.figures)

    # readable in admin: the new tables under their titles, the figures in the gallery
    user = get_user_model().objects.create_user("r13", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    page = client.get(reverse("admin:attacks_robustnessreport_change", args=[report.pk])).content.decode()
    for key in ("calibration", "table4_paper", "table4_pairwise", "per_class", "budget_sweep"):
        assert html.escape(reports.table_title(key)) in page, key
    for fig in ("budget_sweep_cal-tiny.png", "success_curves_cal-tiny.png"):
        assert any(reverse("data-file", args=[p]) in page for p in report.figures if p.endswith(fig))


def test_calibrate_budget_method_flag_replaces_the_default():
    from attacks.management.commands.calibrate_budget import Command

    parser = Command().create_parser("manage.py", "calibrate_budget")
    assert parser.parse_args(["--recognizer", "r", "--method", "ciasa"]).method == ["ciasa"]
    assert parser.parse_args(["--recognizer", "r"]).method is None  # handle() reads None as iaa and ciasa
