"""The database side of the robustness report: filtered runs, samples and transfer
results as plain records for `attacks.core.reporting`, the joint features of stored motions,
and the RobustnessReport row with its files.

Everything numerical happens in `attacks.core.reporting`; this module only queries, streams
motions in chunks (a report over thousands of samples must not hold them all), writes
files and saves the row.

Engine versions: a run belongs to the engine (`attacks.services.generation.ENGINE_VERSION`) that
computed it, recorded as config["engine"]; a run without the key was stored before the
version existed, i.e. engine 1. Runs of an older engine compute another definition of
the attack, so by default a report leaves them out altogether (a method whose runs are
all old is then absent from the tables, not silently reported by an old run). With
`ReportFilters(old_engines=True)` (`robustness_report --old-engines`) they are included
for the (recognizer, method, attack) cells no current run covers, labelled '[engine N]' in
the wide tables and by the engine / outdated columns of the long ones; a current run
still always comes first (`reports.select_runs`).
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from attacks.services import generation

from attacks.core.reporting import protocol as report_protocol

from attacks.core import reporting as reports
from attacks.core.data.labels import label_name
from attacks.core.methods.smart import SmartConfig
from attacks.models import AdversarialSample, GenerationRun, RobustnessReport, TransferResult


@dataclass(frozen=True)
class ReportFilters:
    """Which rows a report covers; empty means all. `split` None means any split.
    `old_engines`: also runs of an older engine version (labelled; see the module doc)."""

    recognizers: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    split: str | None = "test"
    old_engines: bool = False

    def as_dict(self) -> dict:
        """The filters as stored with a report; old_engines only when set."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if not out["old_engines"]:
            del out["old_engines"]
        return out


@dataclass
class ReportResult:
    report: RobustnessReport
    tables: dict[str, pd.DataFrame]
    files: list[Path] = field(default_factory=list)


def report_records(filters: ReportFilters) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, samples, transfers) records in the columns `attacks.core.reporting.records` documents;
    runs of an older engine only with `filters.old_engines` (marked outdated)."""
    runs = GenerationRun.objects.select_related("recognizer__dataset").order_by("id")
    if filters.recognizers:
        runs = runs.filter(recognizer__name__in=filters.recognizers)
    if filters.datasets:
        runs = runs.filter(recognizer__dataset__name__in=filters.datasets)
    if filters.methods:
        runs = runs.filter(method__in=filters.methods)
    if filters.split:
        runs = runs.filter(split=filters.split)
    run_rows = [{"run_id": r.id, "recognizer": r.recognizer.name, "arch": r.recognizer.arch,
                 "dataset": r.recognizer.dataset.name,
                 "test_accuracy": np.nan if r.recognizer.test_accuracy is None else r.recognizer.test_accuracy,
                 "method": r.method, "strategy": r.strategy, "top_n": (r.config or {}).get("top_n"),
                 "total": r.total, "skipped": r.skipped, "created_at": r.created_at,
                 "options": reports.options_label(_variant_options(r.config or {})),
                 "preset": preset_label(r.config or {}),
                 "precision": (r.config or {}).get("precision", "fp32"),
                 "calibrated": "reference_run" in (r.calibration or {}), "calibration": r.calibration or {},
                 "budget": run_budget(r.method, r.config or {}),
                 "iteration_budget": (r.config or {}).get("iterations", np.nan),
                 "engine": run_engine(r), "outdated": run_engine(r) != generation.ENGINE_VERSION} for r in runs]
    if not filters.old_engines:
        run_rows = [r for r in run_rows if not r["outdated"]]
    run_ids = [r["run_id"] for r in run_rows]
    samples = list(AdversarialSample.objects.filter(run_id__in=run_ids).order_by("id").values(
        "run_id", "clip_id", "success", "attack_success", "iterations", "label", *reports.METRICS, sample_id=F("id"),
        class_names=F("recognizer__dataset__class_names")))
    for s in samples:
        s["class_name"] = label_name(s.pop("class_names"), s["label"])
    transfers = TransferResult.objects.filter(sample__run_id__in=run_ids).order_by("id")
    if filters.recognizers:
        transfers = transfers.filter(recognizer__name__in=filters.recognizers)
    transfers = transfers.values("sample_id", "label_clean", "success", "in_target_training",
                                 target=F("recognizer__name"),
                                 label=F("sample__label"))
    return (reports.frame(run_rows, reports.RUN_COLUMNS), reports.frame(list(samples), reports.SAMPLE_COLUMNS),
            reports.frame(list(transfers), reports.TRANSFER_COLUMNS))


def run_budget(method: str, config: dict) -> float:
    """The run's budget parameter when its options vary nothing else: ε for IAA / CIASA
    (with or without the step), lr for SMART and its ablations at the default preset; NaN
    for any other variant (it is not a point of the budget sweep)."""
    from attacks.services.calibration import BUDGET_PARAMETER
    from attacks.core.methods import method_config

    options = dict(config.get("options") or {})
    parameter = BUDGET_PARAMETER.get(method)
    preset = config.get("preset")
    if parameter is None or (isinstance(preset, dict) and preset.get("name") != SmartConfig.DEFAULT_PRESET):
        return np.nan
    if set(options) - {parameter, "step_size" if parameter == "epsilon" else parameter}:
        return np.nan
    try:
        return float(getattr(method_config(method, **options), parameter))
    except (TypeError, ValueError):
        return np.nan


def preset_label(config: dict) -> str:
    """'name vN' of a SMART-family run's preset ('' for other methods and older runs)."""
    preset = config.get("preset")
    return f"{preset['name']} v{preset['version']}" if isinstance(preset, dict) else ""


def _variant_options(config: dict) -> dict:
    """A run's options, plus its preset when it is not the default one: a run of another
    preset is a variant of the method, as a run with another w is."""
    options = dict(config.get("options") or {})
    preset = config.get("preset")
    if isinstance(preset, dict) and preset.get("name") != SmartConfig.DEFAULT_PRESET:
        options["preset"] = preset["name"]
    return options


def run_engine(run: GenerationRun) -> int:
    """The engine version that computed `run`: config["engine"], 1 for a run stored before
    versioning (no key)."""
    engine = (run.config or {}).get("engine", 1)
    try:
        return int(engine)
    except (TypeError, ValueError):
        return 1


def vulnerability_features(run_id: int, chunk_size: int = 64) -> tuple[dict[str, np.ndarray], int]:
    """Joint displacement / speed / acceleration (N, V) of the successful samples of one
    run, streamed in chunks and vectorised over samples of equal shape."""
    rows = (AdversarialSample.objects.filter(run_id=run_id, success=True).order_by("id")
            .only("id", "fps", "num_persons", "num_frames", "num_joints", "original", "adversarial"))
    parts: list[dict[str, np.ndarray]] = []
    chunk = []
    for s in rows.iterator(chunk_size=chunk_size):
        chunk.append(s)
        if len(chunk) == chunk_size:
            parts += _chunk_features(chunk)
            chunk = []
    parts += _chunk_features(chunk)
    if not parts:
        return {}, 0
    features = {k: np.concatenate([p[k] for p in parts]) for k in ("displacement", "speed", "acceleration")}
    return features, len(features["displacement"])


def build_report(filters: ReportFilters, out_dir, name: str | None = None, method: str = "smart",
                 vulnerability_attack: str = "AB") -> ReportResult:
    """Compute every table and figure, write them (CSV, PNG, report.md) to `out_dir`,
    and store a RobustnessReport whose figure paths are relative to DATA_DIR."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, samples, transfers = report_records(filters)
    tables = reports.robustness_tables(runs, samples, transfers, method=method)
    figures = [reports.success_bar_chart(tables["table1_long"], out_dir / "success_rates.png")]
    files = []

    summary = []
    chosen = reports.select_runs(runs, samples)
    chosen = chosen[(chosen["method"] == method) & (chosen["attack"] == vulnerability_attack)]
    for run in chosen.sort_values("recognizer").itertuples():
        features, n = vulnerability_features(run.run_id)
        if not n:
            continue
        joint_names = _joint_names(run.run_id, features["displacement"].shape[1])
        matrices = reports.vulnerability_correlations(features)
        summary += reports.correlation_summary(run.recognizer, matrices, n)
        for kind, matrix in matrices.items():
            stem = f"vulnerability_{run.recognizer}_{kind}"
            csv = out_dir / f"{stem}.csv"
            reports.correlation_frame(matrix, joint_names, kind).to_csv(csv)
            files.append(csv)
            title = f"{run.recognizer} ({run.dataset}), {method} {vulnerability_attack}: {kind} (n={n})"
            figures.append(reports.correlation_heatmap(matrix, joint_names, title, out_dir / f"{stem}.png", kind))
    tables["vulnerability"] = pd.DataFrame(
        summary, columns=["recognizer", "correlation", "samples", "mean_diagonal", "mean_off_diagonal", "undefined"])
    figures += protocol_figures(tables, out_dir)
    tables = _ordered(tables)

    files += reports.write_tables(tables, out_dir)
    name = name or f"robustness report {timezone.now():%Y-%m-%d %H:%M}"
    markdown = out_dir / "report.md"
    markdown.write_text(reports.markdown_report(name, filters.as_dict(), tables, figures, out_dir) + "\n")
    files += [markdown, *figures]

    report = RobustnessReport.objects.create(name=name, filters=filters.as_dict(), out_dir=str(out_dir),
                                             tables=reports.json_tables(tables))
    report.figures = _publish_figures(figures, report.pk)
    report.save(update_fields=["figures"])
    return ReportResult(report=report, tables=tables, files=files)


def protocol_figures(tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Per recognizer: success against iteration (every reported run) and, where budgets
    were swept or calibrated, success against the budget; each figure's numbers are rows
    of success_curves_long.csv / budget_sweep.csv (and per-recognizer CSVs beside the PNGs)."""
    figures = []
    curves, sweep = tables["success_curves_long"], tables["budget_sweep"]
    for recognizer in sorted(set(curves["recognizer"])):
        stem = out_dir / f"success_curves_{recognizer}"
        curves[curves["recognizer"] == recognizer].to_csv(stem.with_suffix(".csv"), index=False)
        figures.append(report_protocol.success_curve_figure(curves, recognizer, stem.with_suffix(".png")))
    for recognizer in sorted(set(sweep["recognizer"])):
        stem = out_dir / f"budget_sweep_{recognizer}"
        sweep[sweep["recognizer"] == recognizer].to_csv(stem.with_suffix(".csv"), index=False)
        figures.append(report_protocol.budget_sweep_figure(sweep, recognizer, stem.with_suffix(".png")))
    return figures


def _chunk_features(chunk) -> list[dict[str, np.ndarray]]:
    groups: dict[tuple, list] = {}
    for s in chunk:
        groups.setdefault(s.shape, []).append(s)
    out = []
    for group in groups.values():
        original = np.stack([s.original_motion() for s in group])
        adversarial = np.stack([s.adversarial_motion() for s in group])
        fps = np.array([s.fps for s in group], dtype=np.float64)
        out.append(reports.joint_motion_features(original, adversarial, fps))
    return out


def _joint_names(run_id: int, num_joints: int) -> list[str]:
    run = GenerationRun.objects.select_related("recognizer__dataset").get(pk=run_id)
    joints = list(run.recognizer.dataset.get_skeleton().joints)
    return joints if len(joints) == num_joints else [f"joint {j}" for j in range(num_joints)]


def _ordered(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Paper tables first, their long forms with counts after."""
    main = {k: v for k, v in tables.items() if not k.endswith("_long")}
    return {**main, **{k: v for k, v in tables.items() if k.endswith("_long")}}


def _publish_figures(figures, report_id: int) -> list[str]:
    """Figure paths relative to DATA_DIR; figures written elsewhere are copied to
    DATA_DIR/reports/<id>/ so admin can serve them."""
    root = Path(settings.DATA_DIR).resolve()
    out = []
    for fig in figures:
        fig = Path(fig).resolve()
        if not fig.is_relative_to(root):
            dest = root / "reports" / str(report_id) / fig.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fig, dest)
            fig = dest
        out.append(fig.relative_to(root).as_posix())
    return out
