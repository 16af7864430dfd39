"""The paper's comparison protocol in the robustness report (issue 13), from plain records.

- Wilson 95% intervals for every success rate (`wilson`, statsmodels' proportion_confint).
- Matched success pairwise: SMART against each other method of one recognizer and attack,
  over the clips both fooled, with the count (`pairwise_matched`), instead of the clips
  every method fooled.
- Success against iteration per method (`success_curves`, from each sample's iteration of
  success), per-class success (`per_class_success`), success against the budget (`budget_sweep`:
  ε for IAA / CIASA, lr for SMART, from the calibration and sweep runs), the calibrations
  themselves (`calibration_table`).
- Table 3 and Table 4 upper in the paper's layout (`table3_paper`, `table4_paper`).

Everything works on the frames of `attacks.core.reporting.records` (runs, samples); figures are PNGs
whose CSVs hold exactly the plotted numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from attacks.core.reporting import records
from attacks.core.reporting.figures import pyplot, save_figure

REFERENCE_METHOD = "smart"
BASELINES = ("smart", "iaa", "ciasa")
DIFFERENCE_LIMIT = 3.0  # points: calibrated baselines within this of SMART's success count as matched


def wilson(succeeded, attacked, alpha: float = 0.05):
    """Wilson score interval (low, high) of succeeded / attacked; NaNs when nothing was attacked.
    Works on scalars and on arrays / Series."""
    k = np.asarray(succeeded, dtype=float)
    n = np.asarray(attacked, dtype=float)
    safe = np.where(n > 0, n, 1.0)
    lo, hi = proportion_confint(np.minimum(k, safe), safe, alpha=alpha, method="wilson")
    lo, hi = np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def with_intervals(df: pd.DataFrame, succeeded="succeeded", attacked="attacked", prefix="") -> pd.DataFrame:
    """`df` with ci_low / ci_high (Wilson 95%) columns after its success rate."""
    df = df.copy()
    if not len(df):
        df[f"{prefix}ci_low"], df[f"{prefix}ci_high"] = pd.Series(dtype=float), pd.Series(dtype=float)
        return df
    lo, hi = wilson(df[succeeded].to_numpy(), df[attacked].to_numpy())
    df[f"{prefix}ci_low"], df[f"{prefix}ci_high"] = lo, hi
    return df


def rate_cell(succeeded, attacked) -> str:
    """'percent (k/n) [low–high]', the interval in percent (Wilson 95%)."""
    if not attacked:
        return records.MISSING
    lo, hi = wilson(succeeded, attacked)
    return f"{100 * succeeded / attacked:.2f} ({int(succeeded)}/{int(attacked)}) [{100 * lo:.1f}–{100 * hi:.1f}]"


# --------------------------------------------------------------------------- Table 4 upper

def runs_ids(runs) -> list:
    return list(records.frame(runs, records.RUN_COLUMNS)["run_id"])


def pairwise_matched(runs, samples, reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """SMART (`reference`) against each other method of one recognizer and attack, over the
    clips both fooled: the count, each one's success, and each one's mean metrics there.
    A budget-calibrated run is paired with the SMART run it was calibrated against (when
    that run is among `runs`), whichever SMART run Table 1 shows."""
    chosen = records.select_runs(runs, samples)
    samples = records.frame(samples, records.SAMPLE_COLUMNS)
    rows = []
    for (recognizer, attack), group in chosen.groupby(["recognizer", "attack"], sort=True):
        ref = group[group["method"] == reference]
        if not len(ref):
            continue
        ref = ref.iloc[0]
        ref_s = samples[samples["run_id"] == ref.run_id]
        others = group[group["method"] != reference]
        others = others.assign(order=others["method"].map(records.method_order)).sort_values("order", kind="stable")
        for r in others.itertuples():
            s = samples[samples["run_id"] == r.run_id]
            ok = s[s["success"].astype(bool)]
            # A calibrated run is compared with the SMART run it was tuned to, when that run is reported.
            tuned_to = (r.calibration or {}).get("reference_run") if isinstance(r.calibration, dict) else None
            pair_s = samples[samples["run_id"] == tuned_to] if tuned_to in set(runs_ids(runs)) else ref_s
            pair_ok = pair_s[pair_s["success"].astype(bool)]
            both = set(pair_ok["clip_id"]) & set(ok["clip_id"])
            row = {"recognizer": recognizer, "dataset": r.dataset, "attack": attack, "reference": reference,
                   "method": r.method, "matched": len(both),
                   "reference_success": records.success_rate(len(pair_ok), len(pair_s)),
                   "method_success": records.success_rate(int(r.succeeded), int(r.attacked)),
                   "method_budget": r.budget if "budget" in chosen.columns else np.nan}
            for prefix, rows_ in (("reference", pair_ok), ("method", ok)):
                means = records.metric_means(rows_[rows_["clip_id"].isin(both)])
                row.update({f"{prefix}_{k}": v for k, v in means.items()})
            rows.append(row)
    metric_cols = [f"{p}_{m}" for m in ("iterations_to_success", *records.METRICS) for p in ("reference", "method")]
    return pd.DataFrame(rows, columns=["recognizer", "dataset", "attack", "reference", "method", "matched",
                                       "reference_success", "method_success", "method_budget", *metric_cols])


def table4_paper(upper: pd.DataFrame, attack: str = "AB") -> pd.DataFrame:
    """Table 4 upper as printed: a row per dataset and recognizer (named by architecture), columns
    SMART, IAA, CIASA with 'percent (k/n) [interval]', and each baseline's budget."""
    upper = upper[(upper["attack"] == attack) & upper["method"].isin(BASELINES)]
    cols = ["dataset", "model", *[m.upper() for m in BASELINES], "IAA epsilon", "CIASA epsilon", "calibrated"]
    if not len(upper):
        return pd.DataFrame(columns=cols)
    labels = records.row_labels(upper.drop_duplicates("recognizer"))
    rows = []
    for (dataset, recognizer), group in upper.groupby(["dataset", "recognizer"], sort=True):
        by = group.set_index("method")
        row = {"dataset": dataset, "model": labels.get(recognizer, recognizer)}
        for m in BASELINES:
            row[m.upper()] = rate_cell(by.loc[m, "succeeded"], by.loc[m, "attacked"]) if m in by.index else \
                records.MISSING
        for m in ("iaa", "ciasa"):
            b = by.loc[m, "budget"] if m in by.index and "budget" in by else np.nan
            row[f"{m.upper()} epsilon"] = records.MISSING if records.is_missing(b) else f"{float(b):g}"
        cal = [m for m in ("iaa", "ciasa") if m in by.index and bool(by.loc[m].get("calibrated", False))]
        row["calibrated"] = ", ".join(cal) if cal else "no"
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def calibration_table(runs, samples) -> pd.DataFrame:
    """The calibrated runs: their budget, success and the reference they were tuned to."""
    runs = records.frame(runs, records.RUN_COLUMNS)
    chosen = records.select_runs(runs, samples)
    cols = ["recognizer", "method", "attack", "run_id", "epsilon", "step_size", "succeeded", "attacked",
            "success_rate", "ci_low", "ci_high", "effective_linf_max", "reference_run", "reference_method",
            "reference_success", "difference_points", "within_3_points", "goal", "reached", "budgets_tried",
            "reported"]
    samples = records.frame(samples, records.SAMPLE_COLUMNS)
    rows = []
    for r in runs.itertuples():
        cal = r.calibration if isinstance(r.calibration, dict) else {}
        if "reference_run" not in cal:
            continue
        hit = chosen[chosen["run_id"] == r.run_id]
        c = cal.get("chosen", {})
        k = int(hit["succeeded"].iloc[0]) if len(hit) else c.get("succeeded", 0)
        n = int(hit["attacked"].iloc[0]) if len(hit) else c.get("attacked", 0)
        rate = records.success_rate(k, n)
        lo, hi = wilson(k, n)
        diff = 100 * (rate - cal["reference_success"])
        rows.append({"recognizer": r.recognizer, "method": r.method, "attack": records.attack_name(r.strategy, r.top_n),
                     "run_id": r.run_id, "epsilon": c.get("value"), "step_size": c.get("step_size"), "succeeded": k,
                     "attacked": n, "success_rate": rate, "ci_low": lo, "ci_high": hi,
                     "effective_linf_max": pd.to_numeric(samples.loc[samples["run_id"] == r.run_id,
                                                                     "linf_displacement"], errors="coerce").max(),
                     "reference_run": cal["reference_run"], "reference_method": cal.get("reference_method"),
                     "reference_success": cal["reference_success"], "difference_points": diff,
                     "within_3_points": bool(abs(diff) <= DIFFERENCE_LIMIT + 1e-9), "goal": cal.get("goal"),
                     "reached": cal.get("reached"), "budgets_tried": len(cal.get("points", [])),
                     "reported": bool(len(hit))})
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------- Table 3

def table3_paper(cells_by_attack: dict[str, pd.DataFrame], attacks=("AB", "AB5")) -> pd.DataFrame:
    """Table 3 as printed: rows surrogate, columns target, each cell 'AB / AB5' percent."""
    present = [a for a in attacks if a in cells_by_attack]
    if not present:
        return pd.DataFrame(columns=["source"])
    all_cells = pd.concat([cells_by_attack[a].assign(attack=a) for a in present])
    names = sorted(set(all_cells["source"]) | set(all_cells["target"]))
    rows = []
    for source in sorted(set(all_cells["source"])):
        row = {"source": source}
        for target in names:
            parts = []
            for a in present:
                hit = all_cells[(all_cells["source"] == source) & (all_cells["target"] == target)
                                & (all_cells["attack"] == a)]
                parts.append(records.MISSING if not len(hit) or not hit["attacked"].iloc[0] else
                             f"{100 * hit['succeeded'].iloc[0] / hit['attacked'].iloc[0]:.2f}")
            row[target] = " / ".join(parts)
        rows.append(row)
    return pd.DataFrame(rows, columns=["source", *names]).rename(columns=lambda c: c if c == "source" else
                                                                 f"{c} ({'/'.join(present)})")


# --------------------------------------------------------------------------- curves, classes, budgets

def success_curves(runs, samples) -> pd.DataFrame:
    """Per reported run, the share of attacked samples that had succeeded by each iteration
    (0 … the run's iteration budget): a sample counts from the iteration it was frozen at."""
    chosen = records.select_runs(runs, samples)
    samples = records.frame(samples, records.SAMPLE_COLUMNS)
    parts = []
    for r in chosen.itertuples():
        s = samples[samples["run_id"] == r.run_id]
        if not len(s):
            continue
        budget = int(r.iteration_budget) if not records.is_missing(getattr(r, "iteration_budget", np.nan)) else \
            int(s["iterations"].max())
        won = np.sort(s.loc[s["success"].astype(bool), "iterations"].astype(int).to_numpy())
        grid = np.arange(budget + 1)
        k = np.searchsorted(won, grid, side="right")
        lo, hi = wilson(k, np.full(len(grid), len(s)))
        parts.append(pd.DataFrame({"recognizer": r.recognizer, "method": r.method, "attack": r.attack,
                                   "run_id": r.run_id, "iteration": grid, "succeeded": k, "attacked": len(s),
                                   "success_rate": k / len(s), "ci_low": lo, "ci_high": hi}))
    cols = ["recognizer", "method", "attack", "run_id", "iteration", "succeeded", "attacked", "success_rate",
            "ci_low", "ci_high"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def per_class_success(runs, samples) -> pd.DataFrame:
    """Per reported run and true class: attacked, succeeded, rate and interval."""
    chosen = records.select_runs(runs, samples)
    samples = records.frame(samples, records.SAMPLE_COLUMNS)
    rows = []
    for r in chosen.itertuples():
        s = samples[samples["run_id"] == r.run_id]
        for label, g in s.groupby("label", sort=True):
            name = g["class_name"].iloc[0] if "class_name" in g and isinstance(g["class_name"].iloc[0], str) \
                else str(label)
            rows.append({"recognizer": r.recognizer, "method": r.method, "attack": r.attack, "run_id": r.run_id,
                         "label": int(label), "class": name, "attacked": len(g),
                         "succeeded": int(g["success"].astype(bool).sum())})
    df = pd.DataFrame(rows, columns=["recognizer", "method", "attack", "run_id", "label", "class", "attacked",
                                     "succeeded"])
    df["success_rate"] = records.success_rate(df["succeeded"], df["attacked"])
    return with_intervals(df)


def budget_sweep(runs, samples, attack: str = "AB") -> pd.DataFrame:
    """Success against the budget: every current-engine run of `attack` whose options differ
    from the method's defaults only in its budget (ε and the step for IAA / CIASA, lr for
    SMART and its ablations; `budget` column of the run records), one point per budget
    (the run with most samples when several share one)."""
    runs = records.frame(runs, records.RUN_COLUMNS)
    samples_f = records.frame(samples, records.SAMPLE_COLUMNS)
    counts = samples_f.groupby("run_id")["success"].agg(attacked="size",
                                                       succeeded=lambda s: int(s.astype(bool).sum()))
    runs = runs.join(counts, on="run_id")
    runs = runs[runs["budget"].notna() & runs["attacked"].fillna(0).gt(0)].copy()
    runs["attack"] = [records.attack_name(s, n) for s, n in zip(runs["strategy"], runs["top_n"])]
    runs = runs[(runs["attack"] == attack) & ~runs["outdated"].fillna(False).astype(bool)]
    runs["parameter"] = runs["method"].map(lambda m: "epsilon" if m in ("iaa", "ciasa") else "lr")
    runs = runs.sort_values(["attacked", "run_id"], ascending=False).drop_duplicates(
        ["recognizer", "method", "budget"])
    runs["success_rate"] = records.success_rate(runs["succeeded"], runs["attacked"])
    runs["calibrated"] = runs["calibrated"].fillna(False).astype(bool)
    out = runs[["recognizer", "method", "attack", "parameter", "budget", "run_id", "succeeded", "attacked",
                "success_rate", "calibrated"]].sort_values(["recognizer", "method", "budget"], kind="stable")
    out[["succeeded", "attacked"]] = out[["succeeded", "attacked"]].astype(int)
    return with_intervals(out.reset_index(drop=True))


# --------------------------------------------------------------------------- figures

def success_curve_figure(curves: pd.DataFrame, recognizer: str, path) -> Path:
    """Success (%) against iteration, one line per method and attack of `recognizer`."""
    data = curves[curves["recognizer"] == recognizer]
    fig, ax = pyplot().subplots(figsize=(5.5, 3.6))
    for (method, attack), g in data.groupby(["method", "attack"], sort=True):
        ax.step(g["iteration"], 100 * g["success_rate"], where="post", label=f"{method} {attack}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 102)
    ax.set_title(f"{recognizer}: success against iteration", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def budget_sweep_figure(sweep: pd.DataFrame, recognizer: str, path) -> Path:
    """Success (%) with its Wilson interval against ε (IAA, CIASA) and against lr (SMART), log x."""
    data = sweep[sweep["recognizer"] == recognizer]
    params = [p for p in ("epsilon", "lr") if (data["parameter"] == p).any()] or ["epsilon"]
    fig, axes = pyplot().subplots(1, len(params), figsize=(4.6 * len(params), 3.6), squeeze=False)
    for ax, param in zip(axes[0], params):
        for method, g in data[data["parameter"] == param].groupby("method", sort=True):
            y = 100 * g["success_rate"].to_numpy()
            err = np.vstack([y - 100 * g["ci_low"].to_numpy(), 100 * g["ci_high"].to_numpy() - y])
            err = np.nan_to_num(np.clip(err, 0, None))  # a bound a hair past its rate after rounding
            ax.errorbar(g["budget"], y, yerr=err, marker="o", capsize=2, label=method)
            cal = g[g["calibrated"]]
            ax.scatter(cal["budget"], 100 * cal["success_rate"], s=90, facecolors="none", edgecolors="k")
        ax.set_xscale("log")
        ax.set_xlabel(f"{param} (m)")
        ax.set_ylabel("success rate (%)")
        ax.set_ylim(0, 102)
        ax.legend(fontsize=7)
    fig.suptitle(f"{recognizer}: success against budget (circled: calibrated)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
