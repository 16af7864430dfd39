"""The report's plain records: the columns of runs, samples and transfers, which run
represents a recognizer × method × attack (`select_runs`), and the small helpers every
table shares (rates that are NaN when nothing was attacked, the paper's attack and method
order, row labels).

Record columns:
- runs: run_id, recognizer, arch, dataset, test_accuracy, method, strategy, top_n,
  total, skipped, created_at (anything sortable; later = larger), options, and
  optionally engine (the run's engine version) and outdated (True for a run of an older
  engine than the current one; missing = False), calibrated (True for the run a budget
  calibration chose, `attacks.services.calibration`), calibration (its record), budget (the run's
  ε for IAA / CIASA or lr for SMART when its options differ from the defaults in nothing
  else; NaN otherwise) and iteration_budget
- samples: sample_id, run_id, clip_id, success, iterations, label, class_name and the
  perceptual metric columns of `METRICS`
- transfers: sample_id, target (recognizer name), label, label_clean, success

Success rates always count samples: successes / attacked samples of one run. When
several runs share a recognizer, method and attack, the one with the most attacked
samples is reported (then the latest), never a pool of runs, so no clip counts twice.
A current-engine run always comes before an outdated one (see `select_runs`); rows of
outdated runs are labelled '[engine N]' in the wide tables and by the engine column of
the long ones.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

METRICS = ("mean_displacement", "max_displacement", "linf_displacement", "bone_length_error", "velocity_deviation",
           "acceleration_deviation", "jerk_deviation")


METHOD_ORDER = ("smart", "iaa", "ciasa", "l2", "l2-acc", "l2-bone")


RUN_COLUMNS = ("run_id", "recognizer", "arch", "dataset", "test_accuracy", "method", "strategy", "top_n",
               "total", "skipped", "created_at", "options", "engine", "outdated", "preset", "calibrated",
               "calibration", "budget", "iteration_budget", "precision")


SAMPLE_COLUMNS = ("sample_id", "run_id", "clip_id", "success", "attack_success", "iterations", "label", "class_name",
                  *METRICS)


TRANSFER_COLUMNS = ("sample_id", "target", "label", "label_clean", "success", "in_target_training")


MISSING = "–"


def frame(records, columns) -> pd.DataFrame:
    """Records (list of dicts or a DataFrame) as a DataFrame with at least `columns`."""
    df = pd.DataFrame(records if records is not None else [])
    for c in columns:
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    return df


def options_label(options) -> str:
    """A run's method options as 'key=value, ...' (sorted); '' for the method's defaults."""
    return ", ".join(f"{k}={options[k]}" for k in sorted(options or {}))


def select_runs(runs, samples) -> pd.DataFrame:
    """One run per (recognizer, method, attack): a run of the current engine before any
    outdated one (a run of an older engine never stands in for the method while a current
    one exists, even a current variant: including old runs only adds rows, it never changes
    one), among outdated runs the newest engine; then a run with the method's default
    options before any variant (a sweep of w or γ in the same database must not stand in
    for the method) — except that a run chosen by a budget calibration comes before both
    (the paper compares IAA and CIASA tuned to SMART's success) —, then the most attacked
    samples, then the latest.

    Adds the columns attack, attacked and succeeded (per-sample counts)."""
    runs, samples = frame(runs, RUN_COLUMNS), frame(samples, SAMPLE_COLUMNS)
    counts = samples.groupby("run_id").agg(
        attacked=("success", "size"), succeeded=("success", lambda s: int(s.astype(bool).sum())),
        succeeded_in_loop=("attack_success", lambda s: int(s.fillna(False).astype(bool).sum())))
    runs = runs.copy()
    runs["attack"] = [attack_name(s, n) for s, n in zip(runs["strategy"], runs["top_n"])]
    runs = runs.join(counts, on="run_id")
    runs[["attacked", "succeeded", "succeeded_in_loop"]] = \
        runs[["attacked", "succeeded", "succeeded_in_loop"]].fillna(0).astype(int)
    runs["outdated"] = runs["outdated"].astype(object).where(runs["outdated"].notna(), False).astype(bool)
    runs["current_engine"] = ~runs["outdated"]
    runs["engine_rank"] = pd.to_numeric(runs["engine"], errors="coerce").fillna(0)
    runs["default_options"] = runs["options"].fillna("").eq("")
    runs["calibrated"] = runs["calibrated"].astype(object).where(runs["calibrated"].notna(), False).astype(bool)
    runs = runs.sort_values(["current_engine", "engine_rank", "calibrated", "default_options", "attacked",
                             "created_at", "run_id"], ascending=False, kind="stable")
    runs = runs.drop(columns=["current_engine", "engine_rank"])
    return runs.drop_duplicates(["recognizer", "method", "attack"]).reset_index(drop=True)


def attack_name(strategy: str, top_n=None) -> str:
    """The paper's column name of a strategy: AB, AB<N> for anything-but-N, SA."""
    if strategy == "ab":
        return "AB"
    if strategy == "abn":
        return f"AB{int(top_n) if top_n is not None and not is_missing(top_n) else 3}"
    if strategy == "sa":
        return "SA"
    return strategy.upper()


def attack_order(attack: str):
    if attack == "AB":
        return (0, 0)
    if attack.startswith("AB") and attack[2:].isdigit():
        return (1, int(attack[2:]))
    return (2, 0) if attack == "SA" else (3, attack)


def method_order(method: str):
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def row_labels(long: pd.DataFrame) -> dict[str, str]:
    """Rows are named by architecture, as in the paper, unless two recognizers of one
    architecture share a dataset; then by recognizer name."""
    pairs = long.drop_duplicates("recognizer")
    clash = pairs.duplicated(["arch", "dataset"], keep=False)
    return {r: (r if c else a) for r, a, c in zip(pairs["recognizer"], pairs["arch"], clash)}


def success_rate(succeeded, attacked):
    if np.isscalar(attacked):
        return float(succeeded) / attacked if attacked else float("nan")
    s = pd.Series(succeeded, dtype=float)
    n = pd.Series(attacked, dtype=float)
    return (s / n.where(n > 0)).astype(float)


def metric_means(rows: pd.DataFrame) -> dict:
    out = {"iterations_to_success": float(rows["iterations"].astype(float).mean()) if len(rows) else float("nan")}
    for m in METRICS:
        out[m] = float(rows[m].astype(float).mean()) if len(rows) else float("nan")
    return out


def nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def is_missing(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False
