"""The matched-success comparison of experiments/perceptual_ablation.py, on hand-made samples."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "perceptual_ablation.py"


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("perceptual_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _samples(success, value, clips=None):
    n = len(success)
    metrics = {m: [value] * n for m in ("mean_displacement", "bone_length_error", "velocity_deviation",
                                         "acceleration_deviation", "jerk_deviation")}
    return pd.DataFrame({"clip_id": clips or list(range(n)), "success": success, "iterations": [5] * n, **metrics})


def test_matched_picks_the_smallest_weight_that_reaches_smart_and_compares_common_clips(ablation):
    samples = {("smart", ablation.PAPER_W): _samples([True, True, True, False], 0.010)}
    for m in ablation.ABLATIONS:
        samples[(m, 0.4)] = _samples([True, False, False, False], 0.001)
        samples[(m, 0.6)] = _samples([False, True, True, True], 0.020)  # 3/4 >= SMART's 3/4
        samples[(m, 0.8)] = _samples([True, True, True, True], 0.030)
    table = ablation.matched_table(samples).set_index("ablation")
    assert list(table["w"]) == [0.6, 0.6, 0.6]
    assert list(table["common_clips"]) == [2, 2, 2]  # clips 1 and 2 fooled by both
    assert table.loc["l2", "acceleration: SMART"] == pytest.approx(10.0)  # mm
    assert table.loc["l2", "acceleration: ablation"] == pytest.approx(20.0)


def test_matched_falls_back_to_the_best_weight_when_none_reaches_smart(ablation):
    samples = {("smart", ablation.PAPER_W): _samples([True, True], 0.01)}
    for m in ablation.ABLATIONS:
        samples[(m, 0.4)] = _samples([False, False], 0.01)
        samples[(m, 0.8)] = _samples([True, False], 0.01)
    table = ablation.matched_table(samples)
    assert set(table["w"]) == {0.8} and set(table["success"]) == {0.5}


def test_sweep_counts_successes_per_sample(ablation):
    table = ablation.sweep_table({("l2", 0.5): _samples([True, False, True], 0.002)})
    row = table.iloc[0]
    assert (row["attacked"], row["succeeded"]) == (3, 2) and row["success_rate"] == pytest.approx(2 / 3)
    assert row["mean_displacement"] == pytest.approx(2.0)


def test_smart_variant_arguments_parse_like_generate_samples_options(ablation):
    assert ablation._variant("gamma25:spine_weight=1,other_weight=0.5") == (
        "gamma25", {"spine_weight": 1, "other_weight": 0.5})
    assert ablation._variant("mean:dyn_reduction=mean") == ("mean", {"dyn_reduction": "mean"})
    # booleans are booleans: the string "false" would be truthy and silently switch nothing off
    assert ablation._variant("raw:balance_terms=false, time_unit=frame") == (
        "raw", {"balance_terms": False, "time_unit": "frame"})
    with pytest.raises(Exception):
        ablation._variant("no-options")
