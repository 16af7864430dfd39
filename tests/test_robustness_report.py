"""Robustness report: per-sample success rates, run selection, transfer matrix, matched
success, joint-vulnerability correlations, files, the stored report row and filters.

Rows are built directly with a small world helper: the expected numbers below are
counted by hand from the success patterns given to it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from attacks.services import generation

from attacks.core import reporting as reports
from attacks.models import (AdversarialSample, Clip, Dataset, DatasetSplit, GenerationRun, Recognizer,
                            RobustnessReport, TransferResult)
from attacks.services.reporting import ReportFilters, report_records
from attacks.core.skeletons import BUILTIN

T, V, FPS = 10, 25, 30.0


# --------------------------------------------------------------------------- world helper

class World:
    """Datasets, clips, recognizers, runs and samples with chosen success patterns."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.clips = {}

    def dataset(self, name, num_clips=6):
        ds = Dataset.objects.create(name=name, format="synthetic", source_path="tests", fps=FPS,
                                    skeleton=BUILTIN["ntu25"].to_dict(), class_names=["a", "b", "c", "d", "e", "f"])
        self.clips[name] = []
        for i in range(num_clips):
            clip = Clip(dataset=ds, index=i, label=i % 3, source=f"toy/{i}", num_persons=1, num_frames=T,
                        num_joints=V)
            clip.set_motion(self.rng.normal(0, 0.3, (1, T, V, 3)).astype(np.float32))
            clip.save()
            self.clips[name].append(clip)
        DatasetSplit.objects.create(dataset=ds, name="all", method="fixture", train=[], val=[],
                                    test=list(range(num_clips)))
        return ds

    def recognizer(self, name, arch, dataset, accuracy):
        return Recognizer.objects.create(name=name, arch=arch, dataset=dataset, split=dataset.splits.get(),
                                         status="ready", test_accuracy=accuracy)

    def run(self, recognizer, method, strategy, successes, top_n=None, skipped=0, split="test", seed=0,
            motions=None, metric_offset=0.0, options=None, engine=None):
        """One run whose k-th sample attacks clip k and succeeded iff successes[k]; of the
        current engine unless `engine` is given (False: no engine key, a pre-versioning run)."""
        config = {"method": method, "strategy": strategy, "top_n": top_n, "target": "random" if strategy == "sa"
                  else None, "iterations": 300, "split": split, "limit": None, "seed": seed, "options": options or {},
                  "engine": generation.ENGINE_VERSION if engine is None else engine}
        if engine is False:
            del config["engine"]
        run = GenerationRun.objects.create(recognizer=recognizer, method=method, strategy=strategy, split=split,
                                           config=config, config_hash=GenerationRun.hash_config(config),
                                           status="done", total=len(successes) + skipped, skipped=skipped)
        clips = self.clips[recognizer.dataset.name]
        for k, ok in enumerate(successes):
            if motions is not None:
                orig, adv = motions[0][k], motions[1][k]
            else:
                orig = clips[k].motion()
                adv = orig + self.rng.normal(0, 0.01, orig.shape).astype(np.float32)
            s = AdversarialSample(run=run, clip=clips[k], recognizer=recognizer, method=method, strategy=strategy,
                                  fps=FPS, label=clips[k].label, label_before=clips[k].label,
                                  label_after=(clips[k].label + (1 if ok else 0)) % 6, probs_before=[], probs_after=[],
                                  success=bool(ok), iterations=10 * (k + 1) + (0 if ok else 300),
                                  **{m: metric_offset + 0.01 * (k + 1) * (j + 1)
                                     for j, m in enumerate(reports.METRICS)})
            s.num_persons, s.num_frames, s.num_joints = orig.shape[:3]
            s.original = np.ascontiguousarray(orig, "<f4").tobytes()
            s.adversarial = np.ascontiguousarray(adv, "<f4").tobytes()
            s.save()
        return run

    @staticmethod
    def transfer(run, target, successes, clean_correct):
        for s, ok, correct in zip(run.samples.order_by("clip__index"), successes, clean_correct):
            TransferResult.objects.create(sample=s, recognizer=target, label_clean=s.label if correct else s.label + 1,
                                          label_after=s.label + 1 if ok else s.label, probs_after=[], success=ok)


def vulnerability_motions(rng, n=6):
    """Motions where joint 3's displacement is exactly 0.05 × its speed (constant
    velocity, constant offset), joint 0 is never displaced, and the rest is noise."""
    t = np.arange(T, dtype=np.float64)[None, :, None]
    base = rng.normal(0, 0.3, (n, 1, 1, V, 3))
    vel = rng.uniform(0.001, 0.02, (n, 1, 1, V, 3))
    orig = base + vel * t[..., None] + rng.normal(0, 0.002, (n, 1, T, V, 3))
    speeds3 = rng.uniform(0.005, 0.05, n)  # metres per frame along x
    along_x = np.zeros((n, 1, T, 3))
    along_x[..., 0] = speeds3[:, None, None] * np.arange(T)
    orig[:, :, :, 3] = base[:, :, :, 3] + along_x
    adv = orig + rng.normal(0, 0.01, orig.shape)
    adv[:, :, :, 0] = orig[:, :, :, 0]
    adv[:, :, :, 3] = orig[:, :, :, 3] + np.array([0.0, 1.0, 0.0]) * (0.05 * speeds3 * FPS)[:, None, None, None]
    return orig.astype(np.float32), adv.astype(np.float32)


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


@pytest.fixture
def world(db):
    """toy: stgcn (AB 3/4, AB3 1/4, AB5 0/4, SA 2/4, IAA, CIASA) and agcn (AB 6/6 with
    vulnerability motions); other: one stgcn. Transfers between the toy recognizers."""
    w = World()
    toy, other = w.dataset("toy"), w.dataset("other")
    stgcn = w.recognizer("toy-stgcn", "stgcn", toy, 0.9)
    agcn = w.recognizer("toy-agcn", "agcn", toy, 0.8)
    other_stgcn = w.recognizer("other-stgcn", "stgcn", other, 0.7)
    w.ab = w.run(stgcn, "smart", "ab", [1, 1, 1, 0], skipped=2)
    w.run(stgcn, "smart", "abn", [1, 0, 0, 0], top_n=3, skipped=2)
    w.ab5 = w.run(stgcn, "smart", "abn", [0, 0, 0, 0], top_n=5, skipped=2)
    w.run(stgcn, "smart", "sa", [1, 1, 0, 0], skipped=2)
    w.run(stgcn, "iaa", "ab", [1, 0, 1, 1], skipped=2, metric_offset=1.0)
    w.run(stgcn, "ciasa", "ab", [1, 1, 1, 1], skipped=2, metric_offset=2.0)
    w.run(stgcn, "smart", "ab", [0, 0, 0, 0, 0, 0], split="val")  # another split: left out by default
    w.vuln = vulnerability_motions(np.random.default_rng(1))
    w.agcn_ab = w.run(agcn, "smart", "ab", [1] * 6, motions=w.vuln)
    w.run(other_stgcn, "smart", "ab", [1, 0], skipped=4)
    w.transfer(w.ab, agcn, [True, False, True, True], clean_correct=[True, True, True, False])
    w.transfer(w.agcn_ab, stgcn, [False] * 5 + [True], clean_correct=[True] * 6)
    w.transfer(w.ab5, agcn, [True, True, False, False], clean_correct=[True] * 4)
    return w


def tables_for(filters=ReportFilters()):
    return reports.robustness_tables(*report_records(filters))


def cell(long, recognizer, attack, column="success_rate"):
    hit = long[(long["recognizer"] == recognizer) & (long["attack"] == attack)]
    assert len(hit) == 1, (recognizer, attack, hit)
    return hit[column].iloc[0]


# --------------------------------------------------------------------------- tables from the database

def test_table1_success_rates_count_samples(world):
    long = tables_for()["table1_long"]
    assert cell(long, "toy-stgcn", "AB") == 3 / 4
    assert cell(long, "toy-stgcn", "AB3") == 1 / 4
    assert cell(long, "toy-stgcn", "AB5") == 0.0
    assert cell(long, "toy-stgcn", "SA") == 2 / 4
    assert cell(long, "toy-agcn", "AB") == 1.0
    assert cell(long, "other-stgcn", "AB") == 1 / 2
    assert (cell(long, "toy-stgcn", "AB", "attacked"), cell(long, "toy-stgcn", "AB", "skipped")) == (4, 2)
    # only SMART in Table 1
    assert set(long["method"]) == {"smart"}


def test_a_variant_run_does_not_stand_in_for_the_default(world):
    stgcn = Recognizer.objects.get(name="toy-stgcn")
    w = World(seed=5)
    w.clips = world.clips
    w.run(stgcn, "smart", "ab", [1, 1, 1, 1, 1, 1], options={"w": 0.8})  # more samples, newer, not the default
    long = tables_for()["table1_long"]
    assert cell(long, "toy-stgcn", "AB") == 3 / 4
    assert cell(long, "toy-stgcn", "AB", "run_id") == world.ab.pk


def test_table1_paper_layout(world):
    t = tables_for()
    wide = t["table1"].set_index("recognizer")
    assert wide.loc["stgcn", "toy AB"] == "75.00 (3/4) [30.1–95.4]"
    assert wide.loc["stgcn", "toy AB3"] == "25.00 (1/4) [4.6–69.9]"
    assert wide.loc["stgcn", "toy clean"] == "90.00"
    assert wide.loc["stgcn", "other AB"] == "50.00 (1/2) [9.5–90.5]"
    assert wide.loc["agcn", "toy SA"] == reports.MISSING
    assert wide.loc["mean", "toy AB"] == f"{100 * (0.75 + 1.0) / 2:.2f}"
    skipped = t["skipped"]
    assert skipped.loc[skipped["recognizer"] == "other-stgcn", "skipped"].tolist() == [4]


def test_transfer_matrix_cells(world):
    t = tables_for()
    long = t["table3_transfer_ab_long"].set_index(["source", "target"])
    # diagonal: white-box rate of the source's own SMART AB run
    assert long.loc[("toy-stgcn", "toy-stgcn"), "success_rate"] == 3 / 4
    # stgcn -> agcn: the 4th clip is misclassified clean by agcn, so 2 of the 3 others
    assert long.loc[("toy-stgcn", "toy-agcn"), ["attacked", "succeeded", "excluded"]].tolist() == [3, 2, 1]
    assert long.loc[("toy-agcn", "toy-stgcn"), "success_rate"] == 1 / 6
    wide = t["table3_transfer_ab"].set_index("source")
    assert wide.loc["toy-stgcn", "toy-agcn"] == "66.67 (2/3) [20.8–93.9]"
    assert wide.loc["toy-agcn", "toy-agcn"] == "100.00 (6/6) [61.0–100.0]"
    ab5 = t["table3_transfer_ab5"].set_index("source")  # AB5 samples failed white box, half "transfer"
    # Table 3 counts only samples that fooled the source: none here, so no rate; the count
    # over all of the source's samples is kept beside it.
    assert (ab5.loc["toy-stgcn", "toy-stgcn"], ab5.loc["toy-stgcn", "toy-agcn"]) == ("0.00 (0/4) [0.0–49.0]", "–")
    ab5_long = t["table3_transfer_ab5_long"].set_index(["source", "target"])
    assert ab5_long.loc[("toy-stgcn", "toy-agcn"), ["attacked", "all_samples", "succeeded_all"]].tolist() == [0, 4, 2]
    assert "table3_transfer_sa" not in t and "table3_transfer_ab3" not in t  # no transfers of those samples


def test_table4_all_successes_and_pairwise_matched_success(world):
    t = tables_for()
    upper = t["table4"].set_index(["recognizer", "attack", "method"])
    row = upper.loc[("toy-stgcn", "AB", "iaa")]
    assert row["success_rate"] == 3 / 4
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)  # Wilson 95%
    # iaa succeeded on clips 0, 2, 3 -> k = 1, 3, 4; metric j=0 is 1.0 + 0.01 k
    assert row["mean_displacement"] == pytest.approx(1.0 + 0.01 * np.mean([1, 3, 4]))
    assert row["iterations_to_success"] == pytest.approx(np.mean([10, 30, 40]))
    assert row["budget"] == pytest.approx(0.01) and not row["calibrated"]  # IAA's default epsilon
    pairs = t["table4_pairwise"].set_index(["recognizer", "attack", "method"])
    # smart {0,1,2} against iaa {0,2,3}: clips {0, 2}; against ciasa {0,1,2,3}: {0, 1, 2}
    iaa, ciasa = pairs.loc[("toy-stgcn", "AB", "iaa")], pairs.loc[("toy-stgcn", "AB", "ciasa")]
    assert iaa["matched"] == 2 and ciasa["matched"] == 3 and iaa["reference"] == "smart"
    f = 0.01 * (reports.METRICS.index("bone_length_error") + 1)  # the world's metric j is offset + 0.01 k (j + 1)
    assert iaa["reference_bone_length_error"] == pytest.approx(f * np.mean([1, 3]))
    assert iaa["method_bone_length_error"] == pytest.approx(1.0 + f * np.mean([1, 3]))
    assert ciasa["method_bone_length_error"] == pytest.approx(2.0 + f * np.mean([1, 2, 3]))
    assert (iaa["reference_success"], iaa["method_success"]) == (3 / 4, 3 / 4)
    assert upper.loc[("toy-stgcn", "AB", "ciasa"), "success_rate"] == 1.0
    paper = t["table4_paper"].set_index(["dataset", "model"])
    stgcn = paper.loc[("toy", "stgcn")]
    assert stgcn["SMART"] == "75.00 (3/4) [30.1–95.4]" and stgcn["CIASA"].startswith("100.00 (4/4)")
    assert stgcn["IAA epsilon"] == "0.01" and stgcn["calibrated"] == "no"
    assert paper.loc[("toy", "agcn"), "IAA"] == reports.MISSING
    assert paper.loc[("other", "stgcn"), "SMART"].startswith("50.00 (1/2)")


def test_filters_restrict_rows(world):
    only = tables_for(ReportFilters(recognizers=("toy-stgcn",)))
    assert set(only["table1_long"]["recognizer"]) == {"toy-stgcn"}
    assert "table3_transfer_ab" not in only  # its transfers target toy-agcn, which is filtered out
    both = tables_for(ReportFilters(recognizers=("toy-stgcn", "toy-agcn")))
    assert set(both["table3_transfer_ab_long"]["target"]) == {"toy-stgcn", "toy-agcn"}
    assert set(tables_for(ReportFilters(datasets=("other",)))["table1_long"]["recognizer"]) == {"other-stgcn"}
    iaa = tables_for(ReportFilters(methods=("iaa",)))
    assert len(iaa["table1_long"]) == 0 and set(iaa["table4"]["method"]) == {"iaa"}
    val = tables_for(ReportFilters(split="val"))
    assert cell(val["table1_long"], "toy-stgcn", "AB") == 0.0
    # with any split the larger (val) run is the one reported for toy-stgcn AB
    assert cell(tables_for(ReportFilters(split=None))["table1_long"], "toy-stgcn", "AB", "attacked") == 6


# --------------------------------------------------------------------------- plain records (no database)

def test_select_runs_prefers_most_samples_then_latest():
    runs = [{"run_id": i, "recognizer": "r", "arch": "a", "dataset": "d", "test_accuracy": 1.0, "method": "smart",
             "strategy": "abn", "top_n": n, "total": 9, "skipped": 0, "created_at": i} for i, n in
            [(1, 3), (2, 3), (3, 3), (4, 5)]]
    samples = [{"sample_id": 10 * r + k, "run_id": r, "clip_id": k, "success": True, "iterations": 1,
                **{m: 0.0 for m in reports.METRICS}} for r, n in [(1, 2), (2, 3), (3, 3), (4, 1)] for k in range(n)]
    chosen = reports.select_runs(runs, samples).set_index("attack")
    assert chosen.loc["AB3", "run_id"] == 3 and chosen.loc["AB3", "attacked"] == 3
    assert chosen.loc["AB5", "run_id"] == 4
    assert reports.attack_name("abn", None) == "AB3" and reports.attack_name("sa") == "SA"


def test_select_runs_prefers_default_options_over_a_larger_later_variant():
    base = {"recognizer": "r", "arch": "a", "dataset": "d", "test_accuracy": 1.0, "method": "smart", "strategy": "ab",
            "top_n": None, "total": 9, "skipped": 0}
    runs = [{**base, "run_id": 1, "created_at": 1, "options": ""},
            {**base, "run_id": 2, "created_at": 2, "options": reports.options_label({"w": 0.6, "alpha": 0.5})}]
    samples = [{"sample_id": 10 * r + k, "run_id": r, "clip_id": k, "success": True, "iterations": 1,
                **{m: 0.0 for m in reports.METRICS}} for r, n in [(1, 2), (2, 5)] for k in range(n)]
    chosen = reports.select_runs(runs, samples)
    assert chosen["run_id"].tolist() == [1]
    assert runs[1]["options"] == "alpha=0.5, w=0.6" and reports.options_label({}) == ""
    only_variant = reports.select_runs(runs[1:], samples)
    assert only_variant["run_id"].tolist() == [2]  # a variant still reports when it is all there is


def test_cross_correlation_matches_numpy_corrcoef():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(40, 4))
    expected = np.corrcoef(a.T, b.T)[:5, 5:]
    np.testing.assert_allclose(reports.cross_correlation(a, b), expected, atol=1e-12)


def test_constant_columns_give_nan_not_warnings():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(10, 3))
    a[:, 1] = 0.1  # constant, not exactly representable
    b = rng.normal(size=(10, 2))
    with np.errstate(all="raise"):
        r = reports.cross_correlation(a, b)
    assert np.isnan(r[1]).all() and not np.isnan(r[[0, 2]]).any()
    assert np.isnan(reports.cross_correlation(a[:1], b[:1])).all()
    summary = reports.correlation_summary("x", {"k": np.array([[np.nan, 0.5], [0.5, 1.0]])}, 10)[0]
    assert summary["undefined"] == 1 and summary["mean_diagonal"] == 1.0


def test_joint_features_ignore_absent_persons_and_padding():
    rng = np.random.default_rng(5)
    q = rng.normal(size=(2, 2, 6, 4, 3))
    q[:, 1] = 0  # second person absent
    q[1, :, 4:] = 0  # padding at the end of sample 1
    qa = q + 0.1 * (q != 0).any(-1, keepdims=True) * np.array([1.0, 0, 0])
    f = reports.joint_motion_features(q, qa, fps=np.array([10.0, 20.0]))
    np.testing.assert_allclose(f["displacement"], 0.1)
    speed1 = np.linalg.norm(np.diff(q[1, 0, :4], axis=0), axis=-1).mean(0) * 20.0
    np.testing.assert_allclose(f["speed"][1], speed1)
    acc0 = np.linalg.norm(np.diff(q[0, 0], 2, axis=0), axis=-1).mean(0) * 100.0
    np.testing.assert_allclose(f["acceleration"][0], acc0)


def test_tables_html_escapes_and_json_is_plain():
    df = pd.DataFrame({"name": ["<b>x</b>"], "rate": [np.float64("nan")], "n": [np.int64(3)]})
    stored = reports.json_tables({"table1": df})
    assert stored == {"table1": [{"name": "<b>x</b>", "rate": None, "n": 3}]}
    page = reports.tables_html(stored)
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x" not in page and reports.MISSING in page


# --------------------------------------------------------------------------- the command

def _hand_correlations(orig, adv):
    disp = np.linalg.norm(adv.astype(np.float64) - orig, axis=-1).mean(axis=(1, 2))
    speed = np.linalg.norm(np.diff(orig.astype(np.float64), axis=2), axis=-1).mean(axis=(1, 2)) * FPS
    acc = np.linalg.norm(np.diff(orig.astype(np.float64), 2, axis=2), axis=-1).mean(axis=(1, 2)) * FPS ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"displacement-displacement": np.corrcoef(disp.T, disp.T)[:V, V:],
                "displacement-speed": np.corrcoef(disp.T, speed.T)[:V, V:],
                "displacement-acceleration": np.corrcoef(disp.T, acc.T)[:V, V:]}


def test_command_writes_files_and_report_row(world, data_dir, capsys):
    out = data_dir / "reports" / "toy"
    call_command("robustness_report", out=str(out), name="toy report", dataset=["toy"])
    printed = capsys.readouterr().out
    assert "75.00 (3/4)" in printed and "Table 3" in printed

    for stem in ("table1", "table1_long", "skipped", "table3_transfer_ab", "table3", "table4", "table4_paper",
                 "table4_pairwise", "calibration", "per_class", "budget_sweep", "success_curves_long",
                 "vulnerability"):
        assert (out / f"{stem}.csv").is_file(), stem
    assert pd.read_csv(out / "table1_long.csv").shape[0] == 5  # stgcn AB, AB3, AB5, SA; agcn AB
    md = (out / "report.md").read_text()
    assert "# toy report" in md and "| stgcn |" in md and "![success_rates](success_rates.png)" in md
    assert (out / "success_rates.png").stat().st_size > 0

    expected = _hand_correlations(*world.vuln)
    joints = BUILTIN["ntu25"].joints
    for kind, matrix in expected.items():
        stored = pd.read_csv(out / f"vulnerability_toy-agcn_{kind}.csv", index_col=0)
        assert list(stored.columns) == [f"{i} {n}" for i, n in enumerate(joints)]
        np.testing.assert_allclose(stored.to_numpy(), matrix, atol=1e-6)  # NaN positions must agree too
        assert (out / f"vulnerability_toy-agcn_{kind}.png").is_file()
        assert np.isnan(stored.to_numpy()[0]).all()  # joint 0 never displaced
    speed = pd.read_csv(out / "vulnerability_toy-agcn_displacement-speed.csv", index_col=0).to_numpy()
    assert speed[3, 3] == pytest.approx(1.0)

    report = RobustnessReport.objects.get()
    assert report.name == "toy report" and report.out_dir == str(out.resolve())
    assert report.filters == {"recognizers": [], "datasets": ["toy"], "methods": [], "split": "test"}
    assert report.tables["table1"][0]["recognizer"] in {"stgcn", "agcn"}
    assert {r["recognizer"] for r in report.tables["table1_long"]} == {"toy-stgcn", "toy-agcn"}
    assert "reports/toy/success_rates.png" in report.figures
    assert all((data_dir / p).is_file() for p in report.figures)
    # bar chart, three heat maps per recognizer with SMART AB successes, then per recognizer success against
    # iteration and against the budget (the default runs' epsilon / lr are one point each)
    assert len(report.figures) == 1 + 3 * 2 + 2 + 2


def test_command_outside_data_dir_copies_figures(world, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("elsewhere")
    call_command("robustness_report", out=str(out), recognizer=["other-stgcn"], vulnerability_attack="SA")
    report = RobustnessReport.objects.get()
    assert report.figures == [f"reports/{report.pk}/{name}.png" for name in (  # other-stgcn has no SA run to analyse
        "success_rates", "success_curves_other-stgcn", "budget_sweep_other-stgcn")]
    assert (data_dir / report.figures[0]).read_bytes() == (out / "success_rates.png").read_bytes()
    assert {r["recognizer"] for r in report.tables["table1_long"]} == {"other-stgcn"}
    assert report.tables["vulnerability"] == []


def test_table1_names_rows_by_recognizer_when_architectures_clash():
    long = pd.DataFrame([{"recognizer": name, "arch": "stgcn", "dataset": "d", "test_accuracy": acc, "attack": "AB",
                          "method": "smart", "run_id": i, "total": 2, "skipped": 0, "attacked": 2, "succeeded": i,
                          "success_rate": i / 2} for i, (name, acc) in enumerate([("s-a", 0.5), ("s-b", np.nan)])])
    wide = reports.table1(long).set_index("recognizer")
    assert list(wide.index) == ["s-a", "s-b", "mean"]
    assert wide.loc["s-b", "d clean"] == reports.MISSING and wide.loc["mean", "d clean"] == "50.00"
    assert wide.loc["mean", "d AB"] == "25.00"


def test_command_rejects_unknown_names(world, data_dir):
    from django.core.management.base import CommandError
    with pytest.raises(CommandError, match="no recognizer named nope"):
        call_command("robustness_report", out=str(data_dir / "x"), recognizer=["nope"])


# --------------------------------------------------------------------------- engine versions

def _old_world(world):
    """Old-engine runs beside the world's current ones: for toy-stgcn SMART AB and IAA AB
    (bigger, newer, default options, all successes: they would win on every other rule),
    for toy-agcn SMART SA and IAA AB, which no current run covers, and a pre-versioning
    (no engine key) SMART AB3 on other-stgcn."""
    stgcn, agcn, other = (Recognizer.objects.get(name=n) for n in ("toy-stgcn", "toy-agcn", "other-stgcn"))
    w = World(seed=7)
    w.clips = world.clips
    old = generation.ENGINE_VERSION - 1
    w.old_ab = w.run(stgcn, "smart", "ab", [1] * 6, engine=old)
    w.old_iaa = w.run(stgcn, "iaa", "ab", [1] * 6, engine=old)
    w.old_sa = w.run(agcn, "smart", "sa", [1, 0, 1, 0, 1, 0], engine=old)
    w.old_agcn_iaa = w.run(agcn, "iaa", "ab", [1, 1, 0, 0, 0, 0], engine=old)
    w.unversioned = w.run(other, "smart", "abn", [1, 1], top_n=3, engine=False)
    return w, old


def test_an_old_engine_run_never_stands_in_by_default(world):
    w, _ = _old_world(world)
    runs = report_records(ReportFilters())[0]
    assert not set(runs["run_id"]) & {w.old_ab.pk, w.old_iaa.pk, w.old_sa.pk, w.old_agcn_iaa.pk, w.unversioned.pk}
    t = tables_for()
    long = t["table1_long"]
    assert cell(long, "toy-stgcn", "AB", "run_id") == world.ab.pk and cell(long, "toy-stgcn", "AB") == 3 / 4
    assert not ((long["recognizer"] == "toy-agcn") & (long["attack"] == "SA")).any()  # only an old run: absent
    assert not ((long["recognizer"] == "other-stgcn") & (long["attack"] == "AB3")).any()
    assert not long["outdated"].any() and set(long["engine"]) == {generation.ENGINE_VERSION}
    assert "[engine" not in t["table1"].to_string()
    upper = t["table4"].set_index(["recognizer", "attack", "method"])
    assert upper.loc[("toy-stgcn", "AB", "iaa"), "success_rate"] == 3 / 4  # the current IAA run, not the old 6/6
    assert ("toy-agcn", "AB", "iaa") not in upper.index
    assert t["table3_transfer_ab_long"].set_index(["source", "target"]).loc[
        ("toy-stgcn", "toy-stgcn"), "success_rate"] == 3 / 4


def test_old_engine_runs_on_request_only_fill_gaps_and_are_labelled(world):
    w, old = _old_world(world)
    t = tables_for(ReportFilters(old_engines=True))
    long = t["table1_long"]
    # a current run exists: it is still the one reported, however large and new the old one
    assert cell(long, "toy-stgcn", "AB", "run_id") == world.ab.pk and not cell(long, "toy-stgcn", "AB", "outdated")
    # no current run: the old one, marked
    assert cell(long, "toy-agcn", "SA", "run_id") == w.old_sa.pk
    assert cell(long, "toy-agcn", "SA", "outdated") and cell(long, "toy-agcn", "SA", "engine") == old
    assert cell(long, "other-stgcn", "AB3", "engine") == 1  # no engine key: stored before versioning
    wide = t["table1"].set_index("recognizer")
    assert wide.loc["agcn", "toy SA"] == f"50.00 (3/6) [18.8–81.2] [engine {old}]"
    assert wide.loc["stgcn", "toy AB"] == "75.00 (3/4) [30.1–95.4]" and wide.loc["stgcn", "other AB3"] == "100.00 (2/2) [34.2–100.0] [engine 1]"
    upper = t["table4"].set_index(["recognizer", "attack", "method"])
    assert upper.loc[("toy-stgcn", "AB", "iaa"), "success_rate"] == 3 / 4
    assert not upper.loc[("toy-stgcn", "AB", "iaa"), "outdated"]
    assert upper.loc[("toy-agcn", "AB", "iaa"), "outdated"] and upper.loc[("toy-agcn", "AB", "iaa"), "engine"] == old
    # the rows of current runs are those of the default report
    default = tables_for()["table1_long"]
    assert long[~long["outdated"]].reset_index(drop=True).equals(default)


def test_a_current_variant_comes_before_an_old_default_run(world):
    stgcn = Recognizer.objects.get(name="toy-stgcn")
    w = World(seed=9)
    w.clips = world.clips
    old = w.run(stgcn, "l2", "ab", [1] * 6, engine=generation.ENGINE_VERSION - 1)
    variant = w.run(stgcn, "l2", "ab", [1, 0], options={"w": 0.8})
    upper = tables_for(ReportFilters(old_engines=True))["table4"]
    row = upper[(upper["recognizer"] == "toy-stgcn") & (upper["method"] == "l2")]
    assert row[["attacked", "succeeded"]].values.tolist() == [[2, 1]] and not row["outdated"].iloc[0]
    chosen = reports.select_runs(*report_records(ReportFilters(old_engines=True))[:2])
    assert old.pk not in set(chosen["run_id"]) and variant.pk in set(chosen["run_id"])


def test_select_runs_prefers_the_current_engine_over_a_larger_later_default():
    base = {"recognizer": "r", "arch": "a", "dataset": "d", "test_accuracy": 1.0, "method": "smart", "strategy": "ab",
            "top_n": None, "total": 9, "skipped": 0}
    runs = [{**base, "run_id": 1, "created_at": 1, "options": "w=0.6", "engine": 3, "outdated": False},
            {**base, "run_id": 2, "created_at": 2, "options": "", "engine": 2, "outdated": True},
            {**base, "run_id": 3, "created_at": 3, "options": "", "engine": 1, "outdated": True}]
    samples = [{"sample_id": 10 * r + k, "run_id": r, "clip_id": k, "success": True, "iterations": 1,
                **{m: 0.0 for m in reports.METRICS}} for r, n in [(1, 1), (2, 5), (3, 9)] for k in range(n)]
    assert reports.select_runs(runs, samples)["run_id"].tolist() == [1]
    assert reports.select_runs(runs[1:], samples)["run_id"].tolist() == [2]  # among old ones the newest engine


def test_report_follows_the_current_engine_version(world, monkeypatch):
    monkeypatch.setattr(generation, "ENGINE_VERSION", generation.ENGINE_VERSION + 1)  # every stored run is old now
    assert len(report_records(ReportFilters())[0]) == 0
    assert len(tables_for()["table1_long"]) == 0
    assert tables_for(ReportFilters(old_engines=True))["table1_long"]["outdated"].all()


def test_command_old_engines_flag(world, data_dir, capsys):
    w, old = _old_world(world)
    call_command("robustness_report", "--out", str(data_dir / "current"), "--recognizer", "toy-agcn")
    report = RobustnessReport.objects.get()
    assert "old_engines" not in report.filters
    assert {r["attack"] for r in report.tables["table1_long"]} == {"AB"}
    assert "[engine" not in capsys.readouterr().out

    call_command("robustness_report", "--out", str(data_dir / "all"), "--recognizer", "toy-agcn", "--old-engines")
    report = RobustnessReport.objects.latest("pk")
    assert report.filters["old_engines"] is True
    rows = {r["attack"]: r for r in report.tables["table1_long"]}
    assert rows["SA"]["run_id"] == w.old_sa.pk and rows["SA"]["outdated"] is True and rows["SA"]["engine"] == old
    assert rows["AB"]["run_id"] == world.agcn_ab.pk and rows["AB"]["outdated"] is False
    assert f"[engine {old}]" in capsys.readouterr().out
    assert f"[engine {old}]" in (data_dir / "all" / "report.md").read_text()
