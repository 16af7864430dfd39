"""Statistics of the perceptual studies, as plain functions of answers (no ORM).

Every function takes counts or a pandas DataFrame with one row per answered trial and
returns plain numbers / dicts, so the report and the tests can check them by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

Z95 = stats.norm.ppf(0.975)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> dict:
    """Proportion with its Wilson score interval; `n == 0` gives NaNs, not an error."""
    if n == 0:
        return {"n": 0, "k": 0, "rate": math.nan, "low": math.nan, "high": math.nan}
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return {"n": int(n), "k": int(successes), "rate": successes / n, "low": float(low), "high": float(high)}


def rate_row(frame: pd.DataFrame, flag: str) -> dict:
    """The rate of boolean column `flag`: the pooled Wilson interval (`low`, `high`) and,
    when the frame names its participants, the participant-aware intervals beside it
    (`boot_*`, `gee_*`, `icc`, `design_effect`; see `studies.core.inference`)."""
    if "participant" not in frame:
        return wilson_interval(int(frame[flag].sum()), len(frame))
    from studies.core.inference import participant_rate
    return participant_rate(frame, flag)


def rates_by(frame: pd.DataFrame, flag: str, groups: list[str]) -> list[dict]:
    """`rate_row` of boolean column `flag` for each combination of `groups` (an empty
    list gives one overall row)."""
    if frame.empty:
        return []
    if not groups:
        return [rate_row(frame, flag)]
    rows = []
    for key, part in frame.groupby(groups, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(groups, key)), **rate_row(part, flag)})
    return rows


def screening(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per participant: accuracy on sensitivity trials (original vs original, correct
    answer 'unchanged') and whether it passes `threshold`. Participants without
    sensitivity trials pass (nothing to screen them on)."""
    sens = frame[(frame["condition"] == "sensitivity") & ~frame["is_practice"]]
    acc = sens.groupby("participant")["is_correct"].agg(["sum", "count"])
    out = pd.DataFrame({"participant": sorted(frame["participant"].unique())}).set_index("participant")
    out["sensitivity_trials"] = acc["count"].reindex(out.index).fillna(0).astype(int)
    out["sensitivity_correct"] = acc["sum"].reindex(out.index).fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sensitivity_accuracy"] = out["sensitivity_correct"] / out["sensitivity_trials"].replace(0, np.nan)
    out["passed"] = out["sensitivity_accuracy"].isna() | (out["sensitivity_accuracy"] >= threshold)
    return out.reset_index()


def catch_accuracy(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per participant with catch trials: how many, how many right, the accuracy and
    whether it reaches `threshold` (participants without catch trials are not listed)."""
    catch = frame[(frame["condition"] == "catch") & ~frame["is_practice"]]
    if catch.empty:
        return pd.DataFrame(columns=["participant", "catch_trials", "catch_correct", "catch_accuracy", "passed"])
    acc = catch.groupby("participant")["is_correct"].agg(["sum", "count"]).reset_index()
    out = pd.DataFrame({"participant": acc["participant"], "catch_trials": acc["count"].astype(int),
                        "catch_correct": acc["sum"].astype(int)})
    out["catch_accuracy"] = out["catch_correct"] / out["catch_trials"]
    out["passed"] = out["catch_accuracy"] >= threshold
    return out


def d_prime(hits: int, signal_trials: int, false_alarms: int, noise_trials: int) -> float:
    """Sensitivity index z(H) - z(F) with the log-linear correction (add 0.5 to each
    count and 1 to each total), so perfect or empty cells stay finite."""
    h = (hits + 0.5) / (signal_trials + 1)
    f = (false_alarms + 0.5) / (noise_trials + 1)
    return float(stats.norm.ppf(h) - stats.norm.ppf(f))


def preference_counts(frame: pd.DataFrame) -> list[dict]:
    """For each unordered method pair of a naturalness study: how often each side's
    method was judged more natural, how often 'cannot tell', their proportions, and a
    two-sided exact binomial test (p = 0.5) on the decisive answers."""
    rows = []
    if frame.empty:
        return rows
    first = np.where(frame["left_method"] <= frame["right_method"], frame["left_method"], frame["right_method"])
    second = np.where(frame["left_method"] <= frame["right_method"], frame["right_method"], frame["left_method"])
    winner = np.where(frame["answer"] == "left", frame["left_method"],
                      np.where(frame["answer"] == "right", frame["right_method"], ""))
    table = pd.DataFrame({"a": first, "b": second, "winner": winner})
    for (a, b), part in table.groupby(["a", "b"], sort=True):
        n = len(part)
        wins_a = int((part["winner"] == a).sum())
        wins_b = int((part["winner"] == b).sum())
        ties = n - wins_a - wins_b
        decisive = wins_a + wins_b
        p = float(stats.binomtest(wins_a, decisive, 0.5).pvalue) if decisive else math.nan
        rows.append({"method_a": a, "method_b": b, "n": n, "a_better": wins_a, "b_better": wins_b,
                     "cannot_tell": ties, "p_a_better": wins_a / n, "p_b_better": wins_b / n,
                     "p_cannot_tell": ties / n, "binomial_p": p})
    return rows


def bradley_terry(items: list[str], wins: list[tuple[str, str]], alpha: float = 1e-4,
                  confidence: float = 0.95) -> list[dict]:
    """Bradley–Terry strengths (log scale, centred to mean zero) from (winner, loser)
    pairs, estimated by choix's penalised maximum likelihood (`alpha` is the tiny ridge
    that keeps perfectly separated data finite). Intervals come from the observed
    Fisher information of the same penalised likelihood (Wald intervals). Sorted best
    first; `preference` is the model's probability of beating an average item."""
    import choix

    index = {name: i for i, name in enumerate(items)}
    data = [(index[w], index[l]) for w, l in wins if w in index and l in index]
    k = len(items)
    if not data:
        return [{"method": m, "strength": 0.0, "low": math.nan, "high": math.nan, "se": math.nan,
                 "preference": 0.5, "preference_low": math.nan, "preference_high": math.nan,
                 "comparisons": 0, "wins": 0} for m in items]
    theta = np.asarray(choix.opt_pairwise(k, data, alpha=alpha), dtype=float)
    theta -= theta.mean()
    # choix penalises alpha * sum(theta**2), whose second derivative is 2 * alpha.
    info = 2 * alpha * np.eye(k)
    for w, l in data:
        p = 1.0 / (1.0 + math.exp(theta[l] - theta[w]))
        d = np.zeros(k)
        d[w], d[l] = 1.0, -1.0
        info += p * (1 - p) * np.outer(d, d)
    # Strengths are identified up to a constant: project onto the sum-zero subspace.
    centre = np.eye(k) - 1.0 / k
    cov = centre @ np.linalg.pinv(centre @ info @ centre) @ centre
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    z = stats.norm.ppf(0.5 + confidence / 2)
    counts = np.zeros(k, dtype=int)
    won = np.zeros(k, dtype=int)
    for w, l in data:
        counts[w] += 1
        counts[l] += 1
        won[w] += 1
    # Strengths are centred, so an average item has strength 0: the probability of beating
    # it is the logistic of the strength (with the interval mapped the same way).
    expit = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    rows = [{"method": items[i], "strength": float(theta[i]), "se": float(se[i]),
             "low": float(theta[i] - z * se[i]), "high": float(theta[i] + z * se[i]),
             "preference": expit(theta[i]), "preference_low": expit(theta[i] - z * se[i]),
             "preference_high": expit(theta[i] + z * se[i]),
             "comparisons": int(counts[i]), "wins": int(won[i])} for i in range(k)]
    return sorted(rows, key=lambda r: -r["strength"])


def detection_table(frame: pd.DataFrame, groups: list[str]) -> list[dict]:
    """Indistinguishability / comparison: for each group (e.g. method, dataset) the share
    of attacked trials judged 'unchanged' (Wilson interval) and d′ against the same
    participants' sensitivity (original vs original) trials in that group's dataset."""
    attacked = frame[frame["condition"] != "sensitivity"].copy()
    sensitivity = frame[frame["condition"] == "sensitivity"]
    attacked["unchanged"] = attacked["answer"] == "unchanged"
    rows = []
    if attacked.empty:
        return rows
    keys = groups or []
    grouped = attacked.groupby(keys, sort=True) if keys else [((), attacked)]
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        ident = dict(zip(keys, key))
        noise = sensitivity
        if "dataset" in ident:
            noise = noise[noise["dataset"] == ident["dataset"]]
        hits = int((part["answer"] == "changed").sum())
        fas = int((noise["answer"] == "changed").sum())
        from studies.core.inference import d_prime_same_different
        rows.append({**ident, **rate_row(part, "unchanged"),
                     "hits": hits, "false_alarms": fas, "sensitivity_trials": len(noise),
                     # The headline: this is a same-different design (two motions, "is the
                     # right one changed?"), so the differencing model's d'; the yes/no
                     # z(H) - z(F) beside it for comparison with other studies.
                     "d_prime": d_prime_same_different(hits, len(part), fas, len(noise)),
                     "d_prime_yes_no": d_prime(hits, len(part), fas, len(noise))})
    return rows


def finite(value):
    """JSON-friendly number: NaN and infinities become None."""
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
