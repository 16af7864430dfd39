"""Participant-aware intervals and tests (studies.core.inference): hand-computed values, and
a coverage simulation with a known rate and intra-class correlation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from studies.core import inference
from studies.core.statistics import d_prime, wilson_interval


def test_cluster_bootstrap_resamples_whole_participants():
    # Two participants, one always right, one always wrong: a resample holds both (rate
    # 0.5, probability 1/2) or one of them twice (0 or 1, 1/4 each): the 95% interval is [0, 1].
    values = [1, 1, 1, 0, 0, 0]
    clusters = ["a", "a", "a", "b", "b", "b"]
    boot = inference.cluster_bootstrap(values, clusters, samples=4000)
    assert boot == {"rate": 0.5, "low": 0.0, "high": 1.0, "participants": 2}
    assert math.isnan(inference.cluster_bootstrap([1, 0], ["a", "a"])["low"])  # one participant


def test_icc_anova_by_hand():
    # Each participant always gives the same answer: ICC 1.
    assert inference.icc_anova([1, 1, 0, 0, 1, 1, 0, 0], [1, 1, 2, 2, 3, 3, 4, 4]) == pytest.approx(1.0)
    # Every participant answers once each way: between = 0, within = 0.5, ICC = -1.
    assert inference.icc_anova([1, 0] * 4, [1, 1, 2, 2, 3, 3, 4, 4]) == pytest.approx(-1.0)


def test_gee_matches_the_pooled_rate_on_balanced_data_and_widens_with_clustering():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 4, size=20)  # participants differ
    values = np.concatenate([rng.random(40) < q for q in p]).astype(float)
    clusters = np.repeat(np.arange(20), 40)
    gee = inference.gee_rate(values, clusters)
    assert gee["rate"] == pytest.approx(values.mean(), abs=1e-6)  # balanced clusters: same point estimate
    pooled = wilson_interval(int(values.sum()), len(values))
    assert gee["high"] - gee["low"] > 1.5 * (pooled["high"] - pooled["low"])
    assert 0.02 < gee["icc"] < 0.5
    assert math.isnan(inference.gee_rate([1, 1, 1], [1, 2, 3])["low"])  # all equal: no model


def test_holm_correction_by_hand():
    rows = [{"a_better": 10, "b_better": 0}, {"a_better": 5, "b_better": 5}, {"a_better": 9, "b_better": 1}]
    out = inference.holm_binomial_tests(rows)
    raw = [2 * 0.5 ** 10, 1.0, 2 * 11 / 1024]
    assert [r["binomial_p"] for r in out] == pytest.approx(raw)
    # Holm: smallest x3, next x2 (never below the previous), largest x1.
    assert [r["holm_p"] for r in out] == pytest.approx([3 * raw[0], 1.0, 2 * raw[2]])


def test_same_different_d_prime_inverts_the_differencing_model():
    d, k = 2.0, 1.0
    f = 2 * stats.norm.cdf(-k / math.sqrt(2))
    h = stats.norm.cdf((d - k) / math.sqrt(2)) + stats.norm.cdf((-d - k) / math.sqrt(2))
    n = 10 ** 7
    got = inference.d_prime_same_different(round(h * (n + 1) - 0.5), n, round(f * (n + 1) - 0.5), n)
    assert got == pytest.approx(d, abs=1e-3)
    # The same rates read as yes/no give a smaller d': the differencing observer needs more.
    assert d_prime(round(h * n), n, round(f * n), n) < got
    assert inference.d_prime_same_different(10, 100, 50, 100) == 0.0  # hits below false alarms


def test_participant_rate_reports_pooled_and_participant_aware_intervals():
    frame = pd.DataFrame({"participant": np.repeat([1, 2, 3, 4], 5),
                          "ok": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]})
    r = inference.participant_rate(frame, "ok")
    assert r["k"] == 10 and r["n"] == 20 and r["participants"] == 4
    assert (r["low"], r["high"]) == pytest.approx((wilson_interval(10, 20)["low"], wilson_interval(10, 20)["high"]))
    assert r["boot_low"] < r["low"] and r["boot_high"] > r["high"]  # strongly clustered: wider
    assert r["design_effect"] == pytest.approx(1 + 4 * r["icc"])


def test_participant_aware_intervals_cover_the_true_rate_and_pooled_ones_do_not():
    """30 participants x 50 trials, true rate 0.3, ICC 0.1 (beta-binomial: each person's
    rate drawn from Beta with a + b = (1 - ICC) / ICC). Over 300 simulated studies the
    bootstrap and GEE intervals cover 0.3 in 90-99% of them; the pooled Wilson interval,
    2.4x too narrow, covers far less often."""
    rate, icc, people, trials, reps = 0.3, 0.1, 30, 50, 300
    a, b = rate * (1 - icc) / icc, (1 - rate) * (1 - icc) / icc
    rng = np.random.default_rng(2026)
    clusters = np.repeat(np.arange(people), trials)
    covered = {"pooled": 0, "bootstrap": 0, "gee": 0}
    iccs = []
    for rep in range(reps):
        person = rng.beta(a, b, size=people)
        values = (rng.random((people, trials)) < person[:, None]).astype(float).ravel()
        pooled = wilson_interval(int(values.sum()), len(values))
        boot = inference.cluster_bootstrap(values, clusters, samples=500, seed=rep)
        gee = inference.gee_rate(values, clusters)
        covered["pooled"] += pooled["low"] <= rate <= pooled["high"]
        covered["bootstrap"] += boot["low"] <= rate <= boot["high"]
        covered["gee"] += gee["low"] <= rate <= gee["high"]
        iccs.append(gee["icc"])
    share = {k: v / reps for k, v in covered.items()}
    print(f"coverage over {reps} simulated studies: {share}; mean ICC estimate {np.mean(iccs):.3f}")
    assert 0.90 <= share["bootstrap"] <= 0.99, share
    assert 0.90 <= share["gee"] <= 0.99, share
    assert share["pooled"] < 0.75, share
    assert np.mean(iccs) == pytest.approx(icc, abs=0.03)


def test_power_helper_agrees_with_the_design_effect_formula():
    """rate 0.5, ICC 0.1, 20 trials each: design effect 2.9; ±10 points (width 0.2) needs
    about 2.9 x 0.25 x (2 x 1.96 / 0.2)^2 / 20 = 14 participants by formula."""
    r = inference.participants_needed(0.5, 0.1, 20, 0.2, repetitions=60)
    assert r["design_effect"] == pytest.approx(2.9)
    assert r["analytic_participants"] == 14
    assert abs(r["participants"] - 14) <= 4 and r["mean_width"] <= 0.2
    smaller = inference.simulated_width(0.5, 0.1, r["participants"] - 2, 20, repetitions=60)
    assert smaller["mean_width"] > 0.2 * 0.97  # fewer people, a wider interval
    with pytest.raises(ValueError, match="rate"):
        inference.simulated_width(1.0, 0.1, 10, 10)


@pytest.mark.django_db
def test_study_power_command_prints_the_answer():
    from io import StringIO

    from django.core.management import call_command
    out = StringIO()
    call_command("study_power", "--trials", "20", "--width", "0.2", "--repetitions", "40", stdout=out)
    assert "participants x 20 trials" in out.getvalue() and "design effect 2.90" in out.getvalue()
