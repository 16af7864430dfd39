"""Robustness report tables and figures, computed from plain records (no Django).

The database layer (`attacks.services.reporting`) turns generation runs, adversarial samples
and transfer results into three pandas frames; everything here works on those frames
and on numpy arrays, so the paper's tables can be rebuilt and tested without a database.

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

import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from attacks.core.reporting.figures import save_figure  # noqa: E402

METRICS = ("mean_displacement", "max_displacement", "linf_displacement", "bone_length_error", "velocity_deviation",
           "acceleration_deviation", "jerk_deviation")
METHOD_ORDER = ("smart", "iaa", "ciasa", "l2", "l2-acc", "l2-bone")
CORRELATION_KINDS = ("displacement-displacement", "displacement-speed", "displacement-acceleration")
RUN_COLUMNS = ("run_id", "recognizer", "arch", "dataset", "test_accuracy", "method", "strategy", "top_n",
               "total", "skipped", "created_at", "options", "engine", "outdated", "preset", "calibrated",
               "calibration", "budget", "iteration_budget", "precision")
SAMPLE_COLUMNS = ("sample_id", "run_id", "clip_id", "success", "attack_success", "iterations", "label", "class_name",
                  *METRICS)
TRANSFER_COLUMNS = ("sample_id", "target", "label", "label_clean", "success", "in_target_training")
MISSING = "–"


# --------------------------------------------------------------------------- tables

def attack_name(strategy: str, top_n=None) -> str:
    """The paper's column name of a strategy: AB, AB<N> for anything-but-N, SA."""
    if strategy == "ab":
        return "AB"
    if strategy == "abn":
        return f"AB{int(top_n) if top_n is not None and not is_missing(top_n) else 3}"
    if strategy == "sa":
        return "SA"
    return strategy.upper()


def robustness_tables(runs, samples, transfers=None, method: str = "smart",
                      transfer_attacks=None) -> dict[str, pd.DataFrame]:
    """Every table of the report, by file stem: Table 1 (wide and long), skipped clips,
    Table 3 transfer matrices (one per attack with transfer results; `transfer_attacks`
    None means every attack of `method`), Table 4 upper (all successes, in the paper's layout, SMART against each method at matched
    success), the calibrations, per-class success, success against iteration and budget
    (`attacks.core.reporting.protocol`)."""
    from attacks.core.reporting import protocol
    runs, samples = frame(runs, RUN_COLUMNS), frame(samples, SAMPLE_COLUMNS)
    transfers = frame(transfers, TRANSFER_COLUMNS)
    long = success_table(runs, samples, method)
    tables = {"table1": table1(long), "table1_long": long, "skipped": skipped_table(long)}
    if transfer_attacks is None:
        transfer_attacks = sorted(set(long["attack"]), key=_attack_order)
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


def success_table(runs, samples, method: str = "smart") -> pd.DataFrame:
    """Long form of Table 1: one row per recognizer and attack of `method` with its counts.

    `succeeded` counts samples whose stored motion fools the recognizer through its own
    preprocessing (what `classify` reports: success after storage); `succeeded_in_loop`
    those the attack loop judged successful when it froze them."""
    chosen = select_runs(runs, samples)
    chosen = chosen[chosen["method"] == method].copy()
    chosen["success_rate"] = success_rate(chosen["succeeded"], chosen["attacked"])
    chosen["order"] = chosen["attack"].map(_attack_order)
    chosen = chosen.sort_values(["dataset", "arch", "recognizer", "order"], kind="stable")
    chosen["success_rate_in_loop"] = success_rate(chosen["succeeded_in_loop"], chosen["attacked"])
    from attacks.core.reporting.protocol import with_intervals
    chosen = with_intervals(chosen)
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
    attacks = sorted(set(long["attack"]) | {"AB", "AB3", "AB5", "SA"}, key=_attack_order)
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
    from attacks.core.reporting.protocol import with_intervals
    out = with_intervals(out)
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
    from attacks.core.reporting.protocol import with_intervals
    metric_cols = ["iterations_to_success", *METRICS]
    cols = ["recognizer", "arch", "dataset", "attack", "method", "budget", "calibrated", "attacked", "succeeded",
            "success_rate", "ci_low", "ci_high", *metric_cols, "engine", "outdated"]
    return with_intervals(pd.DataFrame(upper, columns=[c for c in cols if c not in ("ci_low", "ci_high")]))[cols]


# --------------------------------------------------------------------------- joint vulnerability

def joint_motion_features(original, adversarial, fps=None) -> dict[str, np.ndarray]:
    """Per sample and joint (N, V): the attack's mean displacement ‖q̂ − q‖ and the
    original motion's mean speed and acceleration magnitude.

    Means run over persons and frames that exist: a person-frame whose original pose is
    all zero (an absent second person, padding) is left out, and a derivative needs all
    the frames it differences. With `fps` (scalar or (N,)) speed is in m/s and
    acceleration in m/s², otherwise per frame."""
    q = np.asarray(original, dtype=np.float64)
    qa = np.asarray(adversarial, dtype=np.float64)
    if q.shape != qa.shape or q.ndim != 5:
        raise ValueError(f"expected two (N, M, T, V, 3) arrays of one shape, got {q.shape} and {qa.shape}")
    valid = np.abs(q).sum(axis=(-1, -2)) > 0  # (N, M, T)
    disp = np.linalg.norm(qa - q, axis=-1)  # (N, M, T, V)
    vel = np.linalg.norm(np.diff(q, 1, axis=2), axis=-1)
    acc = np.linalg.norm(np.diff(q, 2, axis=2), axis=-1)
    valid_vel = valid[:, :, 1:] & valid[:, :, :-1]
    valid_acc = valid_vel[:, :, 1:] & valid_vel[:, :, :-1]
    out = {"displacement": _mean_over_frames(disp, valid), "speed": _mean_over_frames(vel, valid_vel),
           "acceleration": _mean_over_frames(acc, valid_acc)}
    if fps is not None:
        f = np.broadcast_to(np.asarray(fps, dtype=np.float64), (len(q),))[:, None]
        out["speed"] = out["speed"] * f
        out["acceleration"] = out["acceleration"] * f ** 2
    return out


def cross_correlation(a, b) -> np.ndarray:
    """Pearson correlation of every column of `a` (N, V) with every column of `b` (N, W)
    across the N samples, (V, W). A constant column (or fewer than two samples) has no
    correlation: its entries are NaN rather than a warning or a made-up 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"a and b need the same number of samples, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return np.full((a.shape[1], b.shape[1]), np.nan)
    ac, bc = a - a.mean(0), b - b.mean(0)
    na, nb = np.sqrt((ac ** 2).sum(0)), np.sqrt((bc ** 2).sum(0))
    # A column whose spread is at rounding level of its magnitude is constant.
    na[na <= 1e-12 * (np.abs(a).max(0) * np.sqrt(len(a)) + 1e-300)] = np.nan
    nb[nb <= 1e-12 * (np.abs(b).max(0) * np.sqrt(len(b)) + 1e-300)] = np.nan
    r = (ac.T @ bc) / np.outer(na, nb)
    return np.clip(r, -1.0, 1.0)


def vulnerability_correlations(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Section 4.6's three V×V matrices from `joint_motion_features` output: entry (i, j)
    correlates joint i's displacement with joint j's displacement / speed / acceleration."""
    d = features["displacement"]
    return {"displacement-displacement": cross_correlation(d, d),
            "displacement-speed": cross_correlation(d, features["speed"]),
            "displacement-acceleration": cross_correlation(d, features["acceleration"])}


def correlation_summary(label: str, matrices: dict[str, np.ndarray], num_samples: int) -> list[dict]:
    """One row per matrix: mean of the diagonal (a joint against itself), mean off the
    diagonal and how many entries are undefined (NaN)."""
    rows = []
    for kind, m in matrices.items():
        diag = np.diag(m)
        off = m[~np.eye(len(m), dtype=bool)]
        rows.append({"recognizer": label, "correlation": kind, "samples": int(num_samples),
                     "mean_diagonal": _nanmean(diag), "mean_off_diagonal": _nanmean(off),
                     "undefined": int(np.isnan(m).sum())})
    return rows


def correlation_frame(matrix: np.ndarray, joint_names, kind: str) -> pd.DataFrame:
    """A V×V matrix with joint names: rows the displaced joint, columns the other quantity's joint."""
    names = [f"{i} {n}" for i, n in enumerate(joint_names)]
    df = pd.DataFrame(matrix, index=names, columns=names)
    df.index.name = f"{kind.split('-')[0]} \\ {kind.split('-')[1]}"
    return df


# --------------------------------------------------------------------------- figures

def correlation_heatmap(matrix: np.ndarray, joint_names, title: str, path, kind: str) -> Path:
    """A diverging heat map on −1..1 (NaN in grey), joint names on both axes; PNG at `path`."""
    v = len(joint_names)
    names = [f"{i} {n}" for i, n in enumerate(joint_names)]
    size = max(4.0, 0.22 * v + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#bbbbbb")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(v), names, rotation=90, fontsize=6)
    ax.set_yticks(range(v), names, fontsize=6)
    first, second = kind.split("-")
    ax.set_ylabel(f"{first} of joint")
    ax.set_xlabel(f"{second} of joint")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Pearson r")
    return save_figure(fig, path, dpi=110)


def success_bar_chart(long: pd.DataFrame, path, title: str = "Success rate per recognizer and attack") -> Path:
    """Grouped bars: per recognizer, the success rate of each attack (Table 1 as a picture)."""
    attacks = sorted(long["attack"].unique(), key=_attack_order) if len(long) else []
    recognizers = list(dict.fromkeys(long["recognizer"])) if len(long) else []
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(recognizers) + 2), 3.6))
    width = 0.8 / max(1, len(attacks))
    x = np.arange(len(recognizers))
    for k, attack in enumerate(attacks):
        rates = [_lookup_rate(long, r, attack) for r in recognizers]
        bars = ax.bar(x + (k - (len(attacks) - 1) / 2) * width, [100 * r if not is_missing(r) else 0 for r in rates],
                      width, label=attack)
        for bar, r in zip(bars, rates):
            if not is_missing(r):
                ax.annotate(f"{100 * r:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, recognizers, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success rate (%)")
    ax.set_title(title, fontsize=9)
    if attacks:
        ax.legend(fontsize=7, ncols=len(attacks), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return save_figure(fig, path, dpi=110)


# --------------------------------------------------------------------------- output

def write_tables(tables: dict[str, pd.DataFrame], out_dir) -> list[Path]:
    """Each table as <name>.csv in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in tables.items():
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=df.index.name is not None)
        paths.append(path)
    return paths


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (floats rounded, NaN as '–')."""
    cols = [str(c) for c in df.columns]
    if df.index.name is not None:
        cols = [str(df.index.name)] + cols
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in zip(df.index, df.itertuples(index=False)):
        cells = ([idx] if df.index.name is not None else []) + list(row)
        lines.append("| " + " | ".join(_md_escape(_format(c, digits)) for c in cells) + " |")
    return "\n".join(lines)


def markdown_report(name: str, filters: dict, tables: dict[str, pd.DataFrame], figures, out_dir) -> str:
    """The report as Markdown: filters, each table under its title, figures linked
    relative to `out_dir`."""
    out_dir = Path(out_dir)
    parts = [f"# {name}", "", "Filters: " + (", ".join(f"{k}={v}" for k, v in filters.items() if v) or "none"), ""]
    for key, df in tables.items():
        parts += [f"## {table_title(key)}", "", f"`{key}.csv`", ""]
        parts += [markdown_table(df) if len(df) else "_no rows_", ""]
    if figures:
        parts += ["## Figures", ""]
        for fig in figures:
            fig = Path(fig)
            rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
            parts += [f"![{fig.stem}]({rel.as_posix()})", ""]
    return "\n".join(parts)


def text_tables(tables: dict[str, pd.DataFrame]) -> str:
    """Every table as plain text, for the terminal."""
    blocks = []
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_rows", 500,
                           "display.float_format", "{:.4g}".format):
        for key, df in tables.items():
            title = table_title(key)
            blocks.append(f"== {title} [{key}]\n" + (df.to_string(index=df.index.name is not None)
                                                    if len(df) else "(no rows)"))
    return "\n\n".join(blocks)


def json_tables(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict]]:
    """Tables as lists of plain dicts (numpy scalars unwrapped, NaN as None) for a JSONField."""
    out = {}
    for key, df in tables.items():
        df = df.reset_index() if df.index.name is not None else df
        out[key] = [{str(k): _json_value(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]
    return out


def tables_html(tables: dict[str, list[dict]]) -> str:
    """Stored (JSON) tables as escaped HTML, for the admin page of a report."""
    parts = []
    for key, rows in tables.items():
        parts.append(f"<h3>{html.escape(table_title(key))}</h3>")
        if not rows:
            parts.append("<p>no rows</p>")
            continue
        cols = list(dict.fromkeys(c for r in rows for c in r))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_format(r.get(c), 4))}</td>" for c in cols) + "</tr>"
                       for r in rows)
        parts.append(f'<table class="robustness-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    return "\n".join(parts)


def table_title(key: str) -> str:
    """A human title for a table's file stem."""
    if key.startswith("table3_transfer_"):
        attack = key.removeprefix("table3_transfer_").removesuffix("_long").upper()
        if key.endswith("_long"):
            return f"Table 3 ({attack}, long form with counts)"
        return f"Table 3: transfer of SMART {attack} samples (rows source, columns target; diagonal white box)"
    return TABLE_TITLES.get(key, key)


TABLE_TITLES = {
    "table1": "Table 1: success rate of SMART (AB, AB-N, SA) per recognizer and dataset",
    "table1_long": "Table 1 (long form, counts)",
    "skipped": "Clips skipped because the recognizer misclassified them before the attack",
    "table4": "Table 4 upper: methods compared (metrics over each method's successes; Wilson 95% interval)",
    "table4_paper": "Table 4 upper in the paper's layout: AB success of SMART, IAA and CIASA (calibrated budgets)",
    "table4_pairwise": "Table 4 upper at matched success, pairwise: SMART against each method over the clips both "
                       "fooled",
    "table3": "Table 3 in the paper's layout: transfer success AB / AB5 (rows source, columns target)",
    "calibration": "Budget calibration: IAA / CIASA epsilon tuned to the reference (SMART) run's success",
    "per_class": "Success per true class (Wilson 95% interval)",
    "budget_sweep": "Success against the budget (epsilon for IAA / CIASA, lr for SMART)",
    "success_curves_long": "Success against iteration (long form, plotted in success_curves_*.png)",
    "vulnerability": "Section 4.6: joint vulnerability correlations (summary)",
}


# --------------------------------------------------------------------------- shared with protocol.py
# The comparison protocol (`attacks.core.reporting.protocol`) builds its tables from the
# same records, so it orders, names and rates them with these.

def method_order(method: str):
    """Sort key of a method: the paper's order (`METHOD_ORDER`), unknown methods last."""
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def row_labels(long: pd.DataFrame) -> dict[str, str]:
    """Rows are named by architecture, as in the paper, unless two recognizers of one
    architecture share a dataset; then by recognizer name."""
    pairs = long.drop_duplicates("recognizer")
    clash = pairs.duplicated(["arch", "dataset"], keep=False)
    return {r: (r if c else a) for r, a, c in zip(pairs["recognizer"], pairs["arch"], clash)}


def success_rate(succeeded, attacked):
    """Successes over attacked samples, for scalars or columns; NaN where nothing was attacked."""
    if np.isscalar(attacked):
        return float(succeeded) / attacked if attacked else float("nan")
    s = pd.Series(succeeded, dtype=float)
    n = pd.Series(attacked, dtype=float)
    return (s / n.where(n > 0)).astype(float)


def metric_means(rows: pd.DataFrame) -> dict:
    """Mean iterations to success and mean of every perceptual metric over sample rows (NaN if none)."""
    out = {"iterations_to_success": float(rows["iterations"].astype(float).mean()) if len(rows) else float("nan")}
    for m in METRICS:
        out[m] = float(rows[m].astype(float).mean()) if len(rows) else float("nan")
    return out


def is_missing(x) -> bool:
    """True for None, NaN and anything float() reads as NaN; False for what it cannot read."""
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- private

def _attack_order(attack: str):
    if attack == "AB":
        return (0, 0)
    if attack.startswith("AB") and attack[2:].isdigit():
        return (1, int(attack[2:]))
    return (2, 0) if attack == "SA" else (3, attack)


def _engine_note(row) -> str:
    """' [engine N]' for a row of an outdated run (included on request), else ''."""
    outdated = getattr(row, "outdated", False)
    if is_missing(outdated) or not bool(outdated):
        return ""
    engine = getattr(row, "engine", None)
    return f" [engine {MISSING if engine is None or is_missing(engine) else int(engine)}]"


def _cell(succeeded, attacked) -> str:
    from attacks.core.reporting.protocol import rate_cell
    return rate_cell(succeeded, attacked)


def _mean_over_frames(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, M, T, V) values, (N, M, T) validity -> (N, V) mean over valid person-frames (NaN if none)."""
    w = valid[..., None].astype(np.float64)
    count = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (values * w).sum(axis=(1, 2)) / count, np.nan)


def _lookup_rate(long, recognizer, attack) -> float:
    hit = long[(long["recognizer"] == recognizer) & (long["attack"] == attack)]
    return float(hit["success_rate"].iloc[0]) if len(hit) else float("nan")


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _format(value, digits: int) -> str:
    if is_missing(value) and not isinstance(value, str):
        return MISSING
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _json_value(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v
