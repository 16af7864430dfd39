"""The human verdict joined to the motion: which objective perceptual measure predicts
what people notice (no ORM; DataFrames in, tables and dicts out).

Why: an attack paper reports objective metrics (displacement, bone-length error,
velocity / acceleration / jerk deviation) and, separately, a user study. Whether an
objective term is worth minimising depends on whether it predicts human detection, and
that needs every human answer beside the metrics of the very motion it judged. This
module builds that join and fits, per study,

- one logistic regression per metric (standardised, so the odds ratio is per standard
  deviation of that metric across the stimuli shown), and
- one model with every metric together (metrics correlate strongly, so read the joint
  model as "which adds information given the others", the univariate ones as "which
  predicts on its own"),

both by GEE with an exchangeable working correlation within participants and robust
standard errors, the participant-aware choice of `studies.core.inference`. When the
exchangeable fit does not converge, the model is fitted with an independence working
correlation instead and the row says so (`working_correlation`): the robust (sandwich)
standard errors stay valid under either working correlation, only less efficient under the
wrong one. It happens with naturalness pairs, whose two rows of one trial are
complementary answers: the within-participant correlation estimate can run off to the
boundary (seen in about one simulated study in eight of 20 participants × 16 pairs).

The outcome is the study protocol's (`VERDICT`, one row per judged attacked motion from
its `verdict_rows`): e.g. indistinguishability, an attacked motion judged "changed";
naturalness, a motion judged the *less* natural of its pair; deceitfulness, the
participant choosing the recognizer's after-attack label (the attack fooled the person).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ["mean_displacement", "max_displacement", "bone_length_error", "velocity_deviation",
           "acceleration_deviation", "jerk_deviation"]


def outcome_rows(trials: pd.DataFrame, protocol) -> pd.DataFrame:
    """One row per judged attacked motion: participant, sample (the AdversarialSample id
    of that motion), method and the binary outcome column `protocol.VERDICT`, as the
    protocol's `verdict_rows` builds them from the answered trials.

    `trials` is the answered-trial table of `studies.reports` (columns participant,
    condition, answer, is_correct, sample, right_sample, left_method, right_method,
    left_shows, right_shows)."""
    rows = protocol.verdict_rows(trials[trials["answer"].notna()])
    rows[protocol.VERDICT] = rows[protocol.VERDICT].astype(bool)
    return rows.reset_index(drop=True)


def join_metrics(rows: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """`rows` with each sample's objective metrics (`metrics` indexed by sample id, with
    the METRICS columns and, where known, recognizer / dataset / clip)."""
    if rows.empty:  # no verdict (or none yet): the columns, no rows (an empty merge may clash on dtypes)
        return rows.reindex(columns=[*rows.columns, *(c for c in metrics.columns if c not in rows)])
    return rows.merge(metrics, left_on="sample", right_index=True, how="inner")


def stimulus_table(joined: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per stimulus (sample): its metrics, how many judgements it got and the share of
    them with the outcome; the per-stimulus CSV of a study."""
    keep = [c for c in ("method", "recognizer", "dataset", "clip") if c in joined]
    grouped = joined.groupby("sample", sort=True)
    table = grouped[keep + METRICS].first()
    table["judgements"] = grouped[outcome].size()
    table["participants"] = grouped["participant"].nunique()
    table[f"share_{outcome}"] = grouped[outcome].mean()
    return table.reset_index()


def _gee(y: np.ndarray, x: np.ndarray, groups: np.ndarray):
    import statsmodels.api as sm
    from statsmodels.genmod.cov_struct import Exchangeable, Independence

    order = np.argsort(groups, kind="stable")
    design = sm.add_constant(x[order], has_constant="add")
    for name, structure in (("exchangeable", Exchangeable), ("independence", Independence)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sm.GEE(y[order], design, groups=groups[order], family=sm.families.Binomial(),
                            cov_struct=structure()).fit()
        if result.converged and np.isfinite(result.params).all() and np.isfinite(result.bse).all():
            break
    return result, name


def _exp(x: float) -> float:
    """exp, NaN for a diverged fit (separation) instead of an overflow."""
    return math.exp(x) if math.isfinite(x) and abs(x) < 700 else math.nan


def verdict_models(joined: pd.DataFrame, outcome: str, confidence: float = 0.95) -> dict:
    """Univariate and joint GEE logistic regressions of `outcome` on standardised metrics.

    Each coefficient row: metric, odds_ratio per SD with its interval, coefficient, robust
    standard error, p-value and the working correlation the fit used. Metrics that do not vary over the stimuli are left out
    (listed under `constant`); too few answers or a constant outcome give empty tables."""
    y = joined[outcome].astype(float).to_numpy()
    groups = pd.factorize(joined["participant"])[0]
    usable, constant = [], []
    for metric in METRICS:
        values = joined[metric].astype(float)
        spread = values.std(ddof=0)
        varies = values.notna().all() and spread > 1e-9 * (abs(values.mean()) + 1e-12)  # beyond rounding
        (usable if varies else constant).append(metric)
    out = {"outcome": outcome, "judgements": int(len(y)), "participants": int(len(set(groups))),
           "rate": float(y.mean()) if len(y) else math.nan, "constant": constant, "univariate": [], "joint": []}
    if len(y) < 10 or y.min() == y.max() or not usable:
        return out
    z = stats.norm.ppf(0.5 + confidence / 2)
    scaled = {m: ((joined[m] - joined[m].mean()) / joined[m].std(ddof=0)).to_numpy(float) for m in usable}

    def rows(fit, names):
        result, working = fit
        table = []
        for i, name in enumerate(names, start=1):
            beta, se, p = float(result.params[i]), float(result.bse[i]), float(result.pvalues[i])
            table.append({"metric": name, "coefficient": beta, "se": se, "p": p, "odds_ratio": _exp(beta),
                          "low": _exp(beta - z * se), "high": _exp(beta + z * se),
                          "sd": float(joined[name].std(ddof=0)), "working_correlation": working})
        return table

    for metric in usable:
        out["univariate"] += rows(_gee(y, scaled[metric][:, None], groups), [metric])
    out["joint"] = rows(_gee(y, np.column_stack([scaled[m] for m in usable]), groups), usable)
    return out
