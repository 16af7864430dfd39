"""PNG figures of study results in the paper's style (Figure 2: preference bars)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attacks.core.reporting.figures import figure_png  # noqa: E402

LABELS = {"smart": "our", "l2": "l2", "l2-acc": "acc", "l2-bone": "bone", "iaa": "IAA", "ciasa": "CIASA"}
COLOURS = ["#2f6690", "#d1495b", "#bbbbbb"]


def rate_bars(rows: list[dict], key: str, ylabel: str) -> bytes:
    """Bars of `rate` (in %) per `key` with Wilson interval whiskers."""
    fig, ax = plt.subplots(figsize=(max(3.0, 0.9 * len(rows) + 1.5), 3.0))
    names = [LABELS.get(str(r[key]), str(r[key])) for r in rows]
    rates = np.array([_num(r["rate"]) for r in rows], dtype=float) * 100
    err = np.array([[_num(r["rate"]) - _num(r["low"]), _num(r["high"]) - _num(r["rate"])] for r in rows],
                   dtype=float).reshape(-1, 2).T * 100
    err = np.nan_to_num(np.clip(err, 0, None))  # rounding can put a bound a hair past the rate
    x = np.arange(len(rows))
    ax.bar(x, rates, color=COLOURS[0], width=0.6)
    if len(rows):
        ax.errorbar(x, rates, yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    for xi, r in zip(x, rows):
        ax.text(xi, 2, f"n={r['n']}", ha="center", fontsize=7, color="white")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"{ylabel} (%)", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig)


def preference_bars(pairs: list[dict], preference: list[dict]) -> bytes:
    """Figure 2 (left) style: normalised user preference per method, and for each
    method pair the share preferring either side or neither."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.5, 3.0), gridspec_kw={"width_ratios": [1, 2]})
    names = [LABELS.get(p["method"], p["method"]) for p in preference]
    vals = np.array([_num(p["rate"]) for p in preference], dtype=float) * 100
    ax1.bar(names, np.nan_to_num(vals), color=COLOURS[0], width=0.6)
    ax1.set_ylabel("user preference (%)", fontsize=8)
    ax1.set_ylim(0, 100)
    ax1.set_title("normalised preference", fontsize=9)
    x = np.arange(len(pairs))
    w = 0.27
    for i, (field, label) in enumerate([("p_a_better", "first better"), ("p_b_better", "second better"),
                                        ("p_cannot_tell", "cannot tell")]):
        ax2.bar(x + (i - 1) * w, [100 * p[field] for p in pairs], w, color=COLOURS[i], label=label)
    ax2.set_xticks(x, [f"{LABELS.get(p['method_a'], p['method_a'])} vs {LABELS.get(p['method_b'], p['method_b'])}"
                       for p in pairs], fontsize=7)
    ax2.set_ylim(0, 100)
    ax2.set_title("per method pair", fontsize=9)
    ax2.legend(fontsize=7, frameon=False)
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig)


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def odds_ratio_forest(rows: list[dict], title: str) -> bytes:
    """Odds ratio per standard deviation of each objective metric, with its interval, on a
    log axis (1 = no effect): which measure predicts what people judged."""
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    ratios = np.array([_num(r["odds_ratio"]) for r in rows])
    low = np.array([_num(r["low"]) for r in rows])
    high = np.array([_num(r["high"]) for r in rows])
    ax.errorbar(ratios, y, xerr=[ratios - low, high - ratios], fmt="o", color=COLOURS[0], ecolor="black",
                capsize=3, lw=1)
    ax.axvline(1.0, color=COLOURS[2], lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, [r["metric"].replace("_", " ") for r in rows], fontsize=8)
    ax.set_xlabel("odds ratio per SD (95% interval, participant-clustered)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig)
