"""The human verdict joined to the motion (studies.core.verdicts): outcome rows per study
kind built by hand, and a simulated study where one metric drives detection."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studies.core import verdicts
from studies.protocols import get_protocol
def trials(**columns) -> pd.DataFrame:
    base = {"participant": [1, 1, 2], "condition": ["smart", "sensitivity", "smart"], "answer": ["changed"] * 3,
            "is_correct": [True, False, True], "sample": [10, 11, 12], "right_sample": [10, 11, 12],
            "left_method": [None] * 3, "right_method": ["smart", "original", "smart"], "method": ["smart"] * 3,
            "left_shows": ["original"] * 3, "right_shows": ["adversarial", "original", "adversarial"]}
    return pd.DataFrame({**base, **columns})


def test_outcome_rows_per_kind():
    ind = verdicts.outcome_rows(trials(answer=["changed", "changed", "unchanged"]),
                                get_protocol("indistinguishability"))
    assert ind.to_dict("list") == {"participant": [1, 2], "sample": [10, 12], "method": ["smart", "smart"],
                                   "judged_changed": [True, False]}  # the sensitivity trial is no attacked motion
    nat = verdicts.outcome_rows(trials(answer=["left", "cannot_tell", "right"], left_method=["l2", "l2", "l2-acc"],
                                       right_method=["smart", "smart", "smart"], sample=[20, 21, 22]),
                                get_protocol("naturalness"))
    # Trial 1: left (l2, sample 20) judged more natural, so right (smart, 10) is the less natural one;
    # 'cannot tell' is left out; trial 3: right chosen, left (l2-acc, 22) less natural.
    assert sorted(zip(nat["sample"], nat["method"], nat["judged_less_natural"])) == [
        (10, "smart", True), (12, "smart", False), (20, "l2", False), (22, "l2-acc", True)]
    dec = verdicts.outcome_rows(trials(is_correct=[True, False, False], condition=["smart", "smart", "catch"]),
                                get_protocol("deceitfulness"))
    assert dec["chose_attacked_label"].tolist() == [False, True]  # catch trials are not attacks


def simulated_study(seed=4, people=40, stimuli=120, per_person=30):
    """Detection driven by the acceleration deviation alone (log-odds +1.2 per SD) plus a
    participant effect; the other metrics are independent noise."""
    rng = np.random.default_rng(seed)
    metrics = pd.DataFrame({m: rng.lognormal(0, 0.5, stimuli) for m in verdicts.METRICS},
                           index=pd.Index(np.arange(stimuli) + 100, name="sample"))
    metrics["method"] = rng.choice(["smart", "l2"], stimuli)
    acc = metrics["acceleration_deviation"]
    z = ((acc - acc.mean()) / acc.std(ddof=0)).to_numpy()
    rows = []
    for person in range(people):
        bias = rng.normal(0, 0.5)
        for s in rng.choice(stimuli, per_person, replace=False):
            p = 1 / (1 + np.exp(-(-0.3 + 1.2 * z[s] + bias)))
            rows.append({"participant": person, "sample": 100 + s, "judged_changed": bool(rng.random() < p)})
    return pd.DataFrame(rows), metrics


def test_the_metric_that_drives_detection_is_found():
    rows, metrics = simulated_study()
    joined = verdicts.join_metrics(rows, metrics.drop(columns="method"))
    result = verdicts.verdict_models(joined, "judged_changed")
    uni = {r["metric"]: r for r in result["univariate"]}
    joint = {r["metric"]: r for r in result["joint"]}
    assert result["judgements"] == 40 * 30 and result["participants"] == 40
    assert uni["acceleration_deviation"]["odds_ratio"] > 2.2 and uni["acceleration_deviation"]["p"] < 1e-8
    assert joint["acceleration_deviation"]["low"] > 1.8
    for metric in ("bone_length_error", "mean_displacement", "jerk_deviation"):
        assert joint[metric]["low"] < 1 < joint[metric]["high"], joint[metric]  # noise: no effect
    assert uni["acceleration_deviation"]["odds_ratio"] == pytest.approx(
        np.exp(uni["acceleration_deviation"]["coefficient"]))


def test_stimulus_table_counts_judgements_per_motion():
    rows, metrics = simulated_study(people=5, per_person=10, stimuli=20)
    table = verdicts.stimulus_table(verdicts.join_metrics(rows, metrics), "judged_changed")
    assert table["judgements"].sum() == 50
    one = table.iloc[0]
    mine = rows[rows["sample"] == one["sample"]]
    assert one["share_judged_changed"] == pytest.approx(mine["judged_changed"].mean())
    assert one["acceleration_deviation"] == metrics.loc[one["sample"], "acceleration_deviation"]
    assert set(table.columns) >= {"method", *verdicts.METRICS, "participants"}


def test_too_few_answers_give_empty_tables_not_errors():
    rows, metrics = simulated_study(people=2, per_person=3, stimuli=10)
    result = verdicts.verdict_models(verdicts.join_metrics(rows, metrics), "judged_changed")
    assert result["univariate"] == [] and result["joint"] == [] and result["judgements"] == 6


def test_a_diverging_exchangeable_fit_falls_back_to_independence_and_says_so():
    """Recorded answers of a simulated naturalness study on which the exchangeable GEE
    diverges (NaN coefficients): the verdict comes from the independence working correlation
    (robust errors), finite and in the simulated direction, and the row names the choice."""
    from pathlib import Path
    recorded = pd.read_csv(Path(__file__).parent / "data" / "gee_exchangeable_diverges.csv", comment="#")
    joined = pd.DataFrame({"participant": recorded["participant"], "judged": recorded["y"],
                           **{m: recorded["x"] if m == "acceleration_deviation" else 1.0 for m in verdicts.METRICS}})
    out = verdicts.verdict_models(joined, "judged")
    (row,) = out["univariate"]
    assert row["working_correlation"] == "independence"
    assert np.isfinite([row["coefficient"], row["se"], row["p"]]).all()
    assert row["odds_ratio"] > 2 and row["low"] < row["odds_ratio"] < row["high"] and row["p"] < 1e-4
    # an ordinary study keeps the exchangeable fit
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    ok = pd.DataFrame({"participant": np.repeat(np.arange(20), 20), "judged": (rng.random(400) < 1 / (1 + np.exp(-x))),
                       **{m: x if m == "acceleration_deviation" else 1.0 for m in verdicts.METRICS}})
    assert verdicts.verdict_models(ok, "judged")["univariate"][0]["working_correlation"] == "exchangeable"
