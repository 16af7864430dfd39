"""Every statistic against values worked out by hand on small fixed answer sets."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as st

from studies.core import statistics
from studies.protocols import comparison, deceitfulness, indistinguishability, naturalness

Z = 1.959963984540054


def test_wilson_interval_matches_the_formula_and_the_textbook_value():
    k, n = 8, 10
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    out = statistics.wilson_interval(k, n)
    assert out["rate"] == 0.8
    assert out["low"] == pytest.approx(centre - half, abs=1e-9) and out["high"] == pytest.approx(centre + half, abs=1e-9)
    assert (round(out["low"], 4), round(out["high"], 4)) == (0.4902, 0.9433)
    assert math.isnan(statistics.wilson_interval(0, 0)["rate"])


def test_d_prime_log_linear_correction_by_hand():
    # hits 1/4 -> (1.5/5), false alarms 0/4 -> (0.5/5)
    assert statistics.d_prime(1, 4, 0, 4) == pytest.approx(st.norm.ppf(0.3) - st.norm.ppf(0.1))
    assert statistics.d_prime(1, 4, 0, 4) == pytest.approx(0.7572, abs=1e-4)
    assert statistics.d_prime(3, 6, 3, 6) == pytest.approx(0.0)


def answers(rows):
    cols = ["participant", "is_practice", "condition", "answer", "is_correct", "method", "dataset"]
    return pd.DataFrame(rows, columns=cols)


def screening_frame():
    rows = []
    # participant 1: 4 of 5 sensitivity trials right (0.8 -> passes at 0.8)
    for i, ok in enumerate([1, 1, 1, 1, 0]):
        rows.append([1, False, "sensitivity", "unchanged" if ok else "changed", bool(ok), "original", "d"])
    # participant 2: 3 of 5 (0.6 -> screened out); a wrong practice trial does not count
    for i, ok in enumerate([1, 1, 1, 0, 0]):
        rows.append([2, False, "sensitivity", "unchanged" if ok else "changed", bool(ok), "original", "d"])
    rows.append([2, True, "sensitivity", "changed", False, "original", "d"])
    # attacked trials: p1 judges 3 of 4 unchanged, p2 all 4 changed
    for ans in ["unchanged", "unchanged", "unchanged", "changed"]:
        rows.append([1, False, "smart", ans, ans == "changed", "smart", "d"])
    for _ in range(4):
        rows.append([2, False, "smart", "changed", True, "smart", "d"])
    return answers(rows)


def test_screening_by_sensitivity_accuracy():
    out = statistics.screening(screening_frame(), 0.8).set_index("participant")
    assert out.loc[1, "sensitivity_accuracy"] == pytest.approx(0.8) and out.loc[1, "passed"]
    assert out.loc[2, "sensitivity_accuracy"] == pytest.approx(0.6) and not out.loc[2, "passed"]
    assert out.loc[2, "sensitivity_trials"] == 5  # practice excluded


def same_different_hit_rate(d: float, false_alarm_rate: float) -> float:
    """H implied by d' and F under the differencing model: F = 2Φ(-k/√2) fixes k."""
    import math
    k = -math.sqrt(2) * st.norm.ppf(false_alarm_rate / 2)
    return st.norm.cdf((d - k) / math.sqrt(2)) + st.norm.cdf((-d - k) / math.sqrt(2))


def test_indistinguishability_analysis_drops_screened_participants():
    result = indistinguishability.analyse(screening_frame(), indistinguishability.validate({}))
    assert result["participants_kept"] == 1 and result["participants_screened_out"] == 1
    row = result["by_method"][0]
    assert (row["method"], row["k"], row["n"]) == ("smart", 3, 4)  # only participant 1's answers
    assert row["rate"] == 0.75
    # hits: 1 of 4 attacked judged changed; false alarms: 1 of 5 originals judged changed
    assert row["d_prime_yes_no"] == pytest.approx(st.norm.ppf(1.5 / 5) - st.norm.ppf(1.5 / 6))
    # The headline d' is the same-different (differencing) model's: it reproduces H from F.
    assert same_different_hit_rate(row["d_prime"], 1.5 / 6) == pytest.approx(1.5 / 5)
    assert result["per_participant_d_prime"] == [{"participant": 1, "d_prime": pytest.approx(row["d_prime"]),
                                                  "d_prime_yes_no": pytest.approx(row["d_prime_yes_no"])}]


def test_deceitfulness_rates_per_dataset_class_and_method():
    frame = pd.DataFrame({
        "participant": [1] * 6, "is_practice": [False] * 5 + [True],
        "dataset": ["a", "a", "a", "b", "b", "b"], "truth_name": ["walk", "walk", "kick", "walk", "walk", "walk"],
        "method": ["smart"] * 6, "is_correct": [True, True, False, True, False, False]})
    out = deceitfulness.analyse(frame, deceitfulness.validate({}))
    assert out["overall"][0]["k"] == 3 and out["overall"][0]["n"] == 5  # practice excluded
    by_ds = {r["dataset"]: (r["k"], r["n"]) for r in out["by_dataset"]}
    assert by_ds == {"a": (2, 3), "b": (1, 2)}
    by_class = {(r["dataset"], r["truth_name"]): r["rate"] for r in out["by_class"]}
    assert by_class == {("a", "kick"): 0.0, ("a", "walk"): 1.0, ("b", "walk"): 0.5}
    assert out["by_dataset"][0]["low"] == pytest.approx(statistics.wilson_interval(2, 3)["low"])


def natural_frame():
    # (left, right, answer)
    trials = [("smart", "l2", "left"), ("l2", "smart", "right"), ("smart", "l2", "left"), ("l2", "smart", "right"),
              ("smart", "l2", "cannot_tell"), ("l2", "l2-acc", "right"), ("l2-acc", "l2", "left"),
              ("l2-bone", "l2", "right")]
    return pd.DataFrame([{"participant": 1, "is_practice": False, "left_method": l, "right_method": r, "answer": a}
                         for l, r, a in trials])


def test_naturalness_pair_proportions_and_binomial_test():
    pairs = {(r["method_a"], r["method_b"]): r for r in statistics.preference_counts(natural_frame())}
    row = pairs[("l2", "smart")]
    assert (row["a_better"], row["b_better"], row["cannot_tell"], row["n"]) == (0, 4, 1, 5)
    assert row["p_b_better"] == 0.8 and row["p_cannot_tell"] == 0.2
    assert row["binomial_p"] == pytest.approx(2 * 0.5**4)  # 4 of 4 decisive answers one way
    assert (pairs[("l2", "l2-acc")]["a_better"], pairs[("l2", "l2-acc")]["b_better"]) == (0, 2)
    assert pairs[("l2", "l2-bone")]["a_better"] == 1


def test_bradley_terry_two_items_by_hand():
    # a beats b three times out of four: strength difference log 3, centred at zero;
    # Fisher information of the difference 4 * 0.75 * 0.25 -> var(diff) = 4/3, var(each) = 1/3.
    rows = {r["method"]: r for r in statistics.bradley_terry(["a", "b"], [("a", "b")] * 3 + [("b", "a")])}
    assert rows["a"]["strength"] - rows["b"]["strength"] == pytest.approx(math.log(3), abs=1e-3)
    assert rows["a"]["strength"] == pytest.approx(math.log(3) / 2, abs=1e-3)
    assert rows["a"]["se"] == pytest.approx(math.sqrt(1 / 3), abs=1e-3)
    assert rows["a"]["low"] == pytest.approx(rows["a"]["strength"] - Z * rows["a"]["se"])
    assert (rows["a"]["wins"], rows["a"]["comparisons"]) == (3, 4)


def test_bradley_terry_penalty_enters_estimate_and_interval_as_choix_defines_it():
    # choix minimises -loglik + alpha * sum(theta**2). Two items, a beats b 3 of 4 times,
    # theta = (t, -t): 4*alpha*t - 6*sigmoid(-2t) + 2*sigmoid(2t) = 0. Information along
    # (1, -1)/sqrt(2): 8 p (1 - p) + 2 alpha with p = sigmoid(2t); var(theta_a) is half its inverse.
    alpha = 1.0
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    t = optimize.brentq(lambda t: 4 * alpha * t - 6 * sig(-2 * t) + 2 * sig(2 * t), 0, 5)
    p = sig(2 * t)
    se = math.sqrt(0.5 / (8 * p * (1 - p) + 2 * alpha))
    rows = {r["method"]: r for r in statistics.bradley_terry(["a", "b"], [("a", "b")] * 3 + [("b", "a")],
                                                             alpha=alpha)}
    assert rows["a"]["strength"] == pytest.approx(t, abs=1e-5)
    assert rows["a"]["se"] == pytest.approx(se, abs=1e-6) and rows["b"]["se"] == pytest.approx(se, abs=1e-6)


def test_naturalness_analysis_ignores_practice_trials():
    frame = pd.concat([natural_frame(), pd.DataFrame([{"participant": 1, "is_practice": True, "left_method": "l2",
                                                       "right_method": "smart", "answer": "left"}])],
                      ignore_index=True)
    out = naturalness.analyse(frame, naturalness.validate({}))
    row = next(r for r in out["pairs"] if (r["method_a"], r["method_b"]) == ("l2", "smart"))
    assert (row["n"], row["a_better"], row["b_better"]) == (5, 0, 4)
    assert {r["method"]: r["wins"] for r in out["bradley_terry"]}["l2"] == 1


def comparison_frame():
    """One participant (7 of 8 sensitivity trials right: kept), two datasets, two methods,
    and a practice trial that must not count."""
    rows = [[1, False, "sensitivity", "unchanged", True, "original", "x"]] * 4
    rows += [[1, False, "sensitivity", a, a == "unchanged", "original", "y"]
             for a in ("changed", "unchanged", "unchanged", "unchanged")]
    for ds, method, a in [("x", "smart", "changed"), ("x", "smart", "unchanged"), ("x", "iaa", "changed"),
                          ("x", "iaa", "changed"), ("y", "smart", "changed"), ("y", "smart", "changed"),
                          ("y", "iaa", "unchanged"), ("y", "iaa", "unchanged")]:
        rows.append([1, False, method, a, a == "changed", method, ds])
    rows.append([1, True, "smart", "unchanged", False, "smart", "x"])
    return answers(rows)


def test_comparison_rates_and_d_prime_per_method_and_dataset_by_hand():
    out = comparison.analyse(comparison_frame(), comparison.validate({"methods": ["smart", "iaa"]}))
    assert out["participants_kept"] == 1
    z = st.norm.ppf
    by_ds = {r["dataset"]: r for r in out["by_dataset"]}
    # x: 1 of 4 attacked judged unchanged, hits 3/4, false alarms 0/4 (x's originals only)
    assert (by_ds["x"]["k"], by_ds["x"]["n"], by_ds["x"]["false_alarms"]) == (1, 4, 0)
    assert by_ds["x"]["d_prime_yes_no"] == pytest.approx(z(3.5 / 5) - z(0.5 / 5))
    assert same_different_hit_rate(by_ds["x"]["d_prime"], 0.5 / 5) == pytest.approx(3.5 / 5)
    # y: 2 of 4 unchanged, hits 2/4, false alarms 1/4
    assert (by_ds["y"]["k"], by_ds["y"]["n"], by_ds["y"]["false_alarms"]) == (2, 4, 1)
    assert by_ds["y"]["d_prime_yes_no"] == pytest.approx(z(2.5 / 5) - z(1.5 / 5))
    by_method = {r["method"]: r for r in out["by_method"]}
    # per method the noise is every original: 1 false alarm in 8
    assert (by_method["iaa"]["k"], by_method["iaa"]["n"], by_method["iaa"]["rate"]) == (2, 4, 0.5)
    assert by_method["iaa"]["d_prime_yes_no"] == pytest.approx(z(2.5 / 5) - z(1.5 / 9))
    assert by_method["smart"]["d_prime_yes_no"] == pytest.approx(z(3.5 / 5) - z(1.5 / 9))
    assert by_method["smart"]["low"] == pytest.approx(statistics.wilson_interval(1, 4)["low"])
    cell = next(r for r in out["by_method_dataset"] if (r["method"], r["dataset"]) == ("iaa", "y"))
    assert (cell["k"], cell["n"], cell["hits"]) == (2, 2, 0)
    assert cell["d_prime_yes_no"] == pytest.approx(z(0.5 / 3) - z(1.5 / 5))
    assert cell["d_prime"] == 0.0  # hits below false alarms: no sensitivity
    assert out["overall"][0]["n"] == 8  # the practice trial is not counted


def test_naturalness_analysis_ranks_methods_and_normalises_preference():
    out = naturalness.analyse(natural_frame(), naturalness.validate({}))
    ranking = [r["method"] for r in out["bradley_terry"]]
    assert ranking[0] == "smart"
    pref = {r["method"]: (r["k"], r["n"]) for r in out["normalised_preference"]}
    # smart shown 5 times, preferred 4; l2 shown 8 times, preferred 1; l2-acc 2 of 2; l2-bone 0 of 1
    assert pref == {"smart": (4, 5), "l2": (1, 8), "l2-acc": (2, 2), "l2-bone": (0, 1)}
    # Each pair's exact test, Holm-corrected over the family of pairs (never below the raw p).
    pairs = out["pairs"]
    assert all(r["holm_p"] >= r["binomial_p"] for r in pairs if r["binomial_p"] == r["binomial_p"])
    smallest = min(pairs, key=lambda r: r["binomial_p"])
    tested = sum(1 for r in pairs if r["binomial_p"] == r["binomial_p"])
    assert smallest["holm_p"] == pytest.approx(min(1.0, tested * smallest["binomial_p"]))


def test_rates_by_handles_empty_frames():
    assert statistics.rates_by(pd.DataFrame({"x": []}), "x", []) == []
    assert statistics.finite(np.float64("nan")) is None


def test_catch_accuracy_per_participant_against_the_threshold():
    from studies.core.statistics import catch_accuracy
    frame = pd.DataFrame({
        "participant": ["A"] * 5 + ["B"] * 5 + ["C"] * 2,
        "condition": ["catch"] * 4 + ["smart"] + ["catch"] * 4 + ["smart"] + ["smart", "catch"],
        "is_practice": [False] * 11 + [True],
        "is_correct": [True, True, True, False, False, True, False, False, True, True, True, False]})
    out = catch_accuracy(frame, 0.75).set_index("participant")
    assert out.loc["A"].tolist() == [4, 3, 0.75, True]  # 3 of 4 meets 0.75
    assert out.loc["B"].tolist() == [4, 2, 0.5, False]
    assert "C" not in out.index  # only a practice catch trial: not judged
    assert catch_accuracy(frame[frame["condition"] != "catch"], 0.8).empty


def test_rates_name_their_participants_and_get_participant_aware_intervals():
    frame = pd.DataFrame({"participant": ["A"] * 4 + ["B"] * 4, "ok": [True] * 4 + [False, False, False, True],
                          "method": ["smart"] * 8})
    row = statistics.rates_by(frame, "ok", ["method"])[0]
    assert (row["k"], row["n"], row["participants"]) == (5, 8, 2)
    assert row["low"] == pytest.approx(statistics.wilson_interval(5, 8)["low"])
    # Two participants, 4/4 and 1/4: the bootstrap resamples them, so its interval runs
    # from both-B (0.25) to both-A (1.0).
    assert (row["boot_low"], row["boot_high"]) == (0.25, 1.0)
    assert "icc" in row and "gee_low" in row
    # Without participant ids only the pooled interval can be given.
    assert set(statistics.rate_row(frame.drop(columns="participant"), "ok")) == {"n", "k", "rate", "low", "high"}


def test_bradley_terry_preference_is_the_chance_of_beating_an_average_method():
    wins = [("smart", "l2")] * 8 + [("l2", "smart")] * 2
    rows = {r["method"]: r for r in statistics.bradley_terry(["smart", "l2"], wins)}
    # Two items, centred strengths ±θ with 4 = exp(2θ) (8 wins to 2): preference = 1 / (1 + exp(-θ)).
    theta = np.log(4) / 2
    assert rows["smart"]["strength"] == pytest.approx(theta, abs=1e-3)
    assert rows["smart"]["preference"] == pytest.approx(1 / (1 + np.exp(-theta)), abs=1e-3)
    assert rows["smart"]["preference_low"] < rows["smart"]["preference"] < rows["smart"]["preference_high"]
    assert rows["l2"]["preference"] == pytest.approx(1 - rows["smart"]["preference"], abs=1e-6)
