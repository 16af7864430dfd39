"""Table 1 (success per recognizer and attack), the skipped clips, Table 3's transfer
matrices and Table 4 upper (each method at its own success), and `robustness_tables`,
which builds every table of the report from the records of `records` (no Django).

The database layer (`attacks.services.reporting`) turns generation runs, adversarial samples
and transfer results into those records; everything here works on pandas frames, so the
paper's tables can be rebuilt and tested without a database.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from attacks.core.reporting import protocol
from attacks.core.reporting.records import (
    METRICS, MISSING, RUN_COLUMNS, SAMPLE_COLUMNS, TRANSFER_COLUMNS, attack_order, frame, is_missing, method_order,
    metric_means, success_rate, row_labels, select_runs,
)


def robustness_tables(runs, samples, transfers=None, method: str = "smart",
                      transfer_attacks=None) -> dict[str, pd.DataFrame]:
    """Every table of the report, by file stem: Table 1 (wide and long), skipped clips,
    Table 3 transfer matrices (one per attack with transfer results; `transfer_attacks`
    None means every attack of `method`), Table 4 upper (all successes, in the paper's layout, SMART against each method at matched
    success), the calibrations, per-class success, success against iteration and budget
    (`attacks.core.reporting.protocol`)."""
    runs, samples = frame(runs, RUN_COLUMNS), frame(samples, SAMPLE_COLUMNS)
    transfers = frame(transfers, TRANSFER_COLUMNS)
    long = success_table(runs, samples, method)
    tables = {"table1": table1(long), "table1_long": long, "skipped": skipped_table(long)}
    if transfer_attacks is None:
        transfer_attacks = sorted(set(long["attack"]), key=attack_order)
    transfer_cells = {}
    for attack in transfer_attacks:
        cells = transfer_table(runs, samples, transfers, attack=attack, method=method)
        if (cells["source"] != cells["target"]).any():  # a diagonal alone is no transfer table
            key = f"table3_transfer_{attack.lower()}"
            tables[key] = transfer_matrix(cells)
            tables[f"{key}_long"] = cells
            transfer_cells[attack] = cells
    if transfer_cells:
        tables["table3"] = protocol.table3_paper(transfer_cells)
    upper = method_comparison(runs, samples)
    tables["table4"] = upper
    tables["table4_paper"] = protocol.table4_paper(upper)
    tables["table4_pairwise"] = protocol.pairwise_matched(runs, samples)
    tables["calibration"] = protocol.calibration_table(runs, samples)
    tables["per_class"] = protocol.per_class_success(runs, samples)
    tables["budget_sweep"] = protocol.budget_sweep(runs, samples)
    tables["success_curves_long"] = protocol.success_curves(runs, samples)
    return tables


def success_table(runs, samples, method: str = "smart") -> pd.DataFrame:
    """Long form of Table 1: one row per recognizer and attack of `method` with its counts.

    `succeeded` counts samples whose stored motion fools the recognizer through its own
    preprocessing (what `classify` reports: success after storage); `succeeded_in_loop`
    those the attack loop judged successful when it froze them."""
    chosen = select_runs(runs, samples)
    chosen = chosen[chosen["method"] == method].copy()
    chosen["success_rate"] = success_rate(chosen["succeeded"], chosen["attacked"])
    chosen["order"] = chosen["attack"].map(attack_order)
    chosen = chosen.sort_values(["dataset", "arch", "recognizer", "order"], kind="stable")
    chosen["success_rate_in_loop"] = success_rate(chosen["succeeded_in_loop"], chosen["attacked"])
    chosen = protocol.with_intervals(chosen)
    cols = ["recognizer", "arch", "dataset", "test_accuracy", "attack", "method", "preset", "precision", "run_id",
            "total", "skipped", "attacked", "succeeded", "success_rate", "ci_low", "ci_high", "succeeded_in_loop",
            "success_rate_in_loop", "engine", "outdated"]
    return chosen[cols].reset_index(drop=True)


def table1(long: pd.DataFrame) -> pd.DataFrame:
    """Table 1 in the paper's layout: a row per recognizer, per dataset the clean test
    accuracy and the success rate of each attack as 'percent (succeeded/attacked)', and
    a mean row over recognizers."""
    if not len(long):
        return pd.DataFrame({"recognizer": []})
    attacks = sorted(set(long["attack"]) | {"AB", "AB3", "AB5", "SA"}, key=attack_order)
    datasets = sorted(long["dataset"].unique())
    labels = row_labels(long)
    rows, sums = [], {}
    for (recognizer, dataset), group in long.groupby(["recognizer", "dataset"], sort=False):
        row = next((r for r in rows if r["recognizer"] == labels[recognizer]), None)
        if row is None:
            row = {"recognizer": labels[recognizer]}
            for d in datasets:
                row.update({f"{d} clean": MISSING, **{f"{d} {a}": MISSING for a in attacks}})
            rows.append(row)
        acc = group["test_accuracy"].iloc[0]
        if not is_missing(acc):
            row[f"{dataset} clean"] = f"{100 * acc:.2f}"
            sums.setdefault(f"{dataset} clean", []).append(acc)
        for r in group.itertuples():
            row[f"{dataset} {r.attack}"] = _cell(r.succeeded, r.attacked) + _engine_note(r)
            if r.attacked:
                sums.setdefault(f"{dataset} {r.attack}", []).append(r.success_rate)
    mean = {"recognizer": "mean"}
    for key in rows[0]:
        if key != "recognizer":
            mean[key] = f"{100 * np.mean(sums[key]):.2f}" if key in sums else MISSING
    return pd.DataFrame(rows + [mean])


def skipped_table(long: pd.DataFrame) -> pd.DataFrame:
    """Clips in scope, misclassified before the attack (skipped) and attacked, per run."""
    cols = ["recognizer", "dataset", "attack", "run_id", "total", "skipped", "attacked"]
    return long[cols].reset_index(drop=True) if len(long) else pd.DataFrame(columns=cols)


def transfer_table(runs, samples, transfers, attack: str = "AB", method: str = "smart",
                   clean_correct_only: bool = True) -> pd.DataFrame:
    """Long form of Table 3: per source recognizer (its `method` run of `attack`) and
    target recognizer, the fraction of the source's samples that also fool the target.

    The diagonal is the source's white-box rate (after storage). Off the diagonal the
    denominator (`attacked`) is the samples that fooled the source *and* whose original the
    target classifies correctly before the attack (with `clean_correct_only`; otherwise
    every sample that fooled the source); `excluded` counts the source's other samples.
    `all_samples` / `succeeded_all` give the count over every sample of the source run, and
    `in_target_training` how many of the counted clips the target was trained or validated on."""
    chosen = select_runs(runs, samples)
    chosen = chosen[(chosen["method"] == method) & (chosen["attack"] == attack)]
    samples = frame(samples, SAMPLE_COLUMNS)
    transfers = frame(transfers, TRANSFER_COLUMNS)
    cols = ["source", "target", "attacked", "succeeded", "success_rate", "excluded", "all_samples", "succeeded_all",
            "in_target_training", "engine", "outdated"]
    rows = []
    for run in chosen.itertuples():
        own = samples[samples["run_id"] == run.run_id]
        fooled = set(own.loc[own["success"].astype(bool), "sample_id"])
        engine = {"engine": run.engine, "outdated": run.outdated}
        rows.append({"source": run.recognizer, "target": run.recognizer, "attacked": len(own),
                     "succeeded": int(own["success"].astype(bool).sum()), "excluded": 0, "all_samples": len(own),
                     "succeeded_all": int(own["success"].astype(bool).sum()), "in_target_training": 0, **engine})
        judged = transfers[transfers["sample_id"].isin(own["sample_id"]) & (transfers["target"] != run.recognizer)]
        for target, group in judged.groupby("target", sort=True):
            keep = group["sample_id"].isin(fooled).to_numpy().copy()
            if clean_correct_only:
                keep &= (group["label_clean"] == group["label"]).to_numpy()
            success = group["success"].astype(bool).to_numpy()
            seen = group["in_target_training"].fillna(False).astype(bool).to_numpy()
            rows.append({"source": run.recognizer, "target": target, "attacked": int(keep.sum()),
                         "succeeded": int(success[keep].sum()), "excluded": int(len(group) - keep.sum()),
                         "all_samples": len(group), "succeeded_all": int(success.sum()),
                         "in_target_training": int(seen[keep].sum()), **engine})
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "success_rate"])
    out["success_rate"] = success_rate(out["succeeded"], out["attacked"])
    out = protocol.with_intervals(out)
    return out[[*cols[:5], "ci_low", "ci_high", *cols[5:]]]


def transfer_matrix(cells: pd.DataFrame) -> pd.DataFrame:
    """Table 3's layout: rows source, columns target, 'percent (attacked)' per cell."""
    names = sorted(set(cells["source"]) | set(cells["target"]))
    rows = []
    for source in sorted(set(cells["source"])):
        row = {"source": source}
        for target in names:
            hit = cells[(cells["source"] == source) & (cells["target"] == target)]
            row[target] = MISSING if not len(hit) else (_cell(hit["succeeded"].iloc[0], hit["attacked"].iloc[0])
                                                        + _engine_note(hit.iloc[0]))
        rows.append(row)
    return pd.DataFrame(rows, columns=["source", *names])


def method_comparison(runs, samples) -> pd.DataFrame:
    """Table 4 upper: per recognizer and attack, each method's success rate (with its Wilson
    interval), its budget (ε or lr, when the run varies only that), whether a calibration
    chose it, iterations to success and mean perceptual metrics over its successes. The
    comparison at matched success is pairwise (`report_protocol.pairwise_matched`)."""
    chosen = select_runs(runs, samples)
    samples = frame(samples, SAMPLE_COLUMNS)
    upper = []
    for (recognizer, attack), group in chosen.groupby(["recognizer", "attack"], sort=True):
        group = group.assign(order=group["method"].map(method_order)).sort_values("order", kind="stable")
        for r in group.itertuples():
            s = samples[samples["run_id"] == r.run_id]
            ok = s[s["success"].astype(bool)]
            upper.append({"recognizer": recognizer, "arch": r.arch, "dataset": r.dataset, "attack": attack,
                          "method": r.method, "budget": r.budget, "calibrated": bool(r.calibrated),
                          "attacked": r.attacked, "succeeded": r.succeeded,
                          "success_rate": success_rate(r.succeeded, r.attacked), **metric_means(ok),
                          "engine": r.engine, "outdated": r.outdated})
    metric_cols = ["iterations_to_success", *METRICS]
    cols = ["recognizer", "arch", "dataset", "attack", "method", "budget", "calibrated", "attacked", "succeeded",
            "success_rate", "ci_low", "ci_high", *metric_cols, "engine", "outdated"]
    return protocol.with_intervals(pd.DataFrame(upper, columns=[c for c in cols if c not in ("ci_low", "ci_high")]))[cols]


def _engine_note(row) -> str:
    """' [engine N]' for a row of an outdated run (included on request), else ''."""
    outdated = getattr(row, "outdated", False)
    if is_missing(outdated) or not bool(outdated):
        return ""
    engine = getattr(row, "engine", None)
    return f" [engine {MISSING if engine is None or is_missing(engine) else int(engine)}]"


def _cell(succeeded, attacked) -> str:
    return protocol.rate_cell(succeeded, attacked)
