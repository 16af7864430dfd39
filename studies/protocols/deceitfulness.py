"""Deceitfulness (paper §4.5): does the attack change what the motion looks like it is?

One attacked motion is played (6 s by default); the participant then picks which of two
labels describes it: the ground truth or the recognizer's after-attack label, in an
order randomised (and balanced) per participant. Success = the ground truth is chosen.

Records: the chosen option. Analysis: success rate with Wilson 95% intervals overall and
per dataset, ground-truth class and method.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import statistics
from .base import (ADVERSARIAL, ConfigurationError, PoolItem, SampleInfo, Shown, TrialSpec, COMMON_DEFAULTS,
                   balanced_flags, least_used, validate_common)

KIND = "deceitfulness"
TITLE = "Deceitfulness"
DEFAULTS = {**COMMON_DEFAULTS, "trials_per_participant": 100, "methods": ["smart"]}
PROMPT = "Which label best describes the motion?"
RECORDS = {"answer": "value of the chosen label option ('1' or '2', in display order)"}


def validate(config: dict) -> dict:
    out = validate_common(config, DEFAULTS)
    if not out["methods"]:
        raise ConfigurationError("methods must name at least one attack method")
    return out


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    """One item per attacked sample whose after-attack label differs from the truth."""
    return [PoolItem(condition=s.method, samples={"attacked": s.id}) for s in samples
            if s.method in config["methods"] and s.label_after != s.label
            and (s.success or not config["only_successful"])]


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    n = config["trials_per_participant"] if n is None else n
    chosen = least_used(pool, n, rng) if not practice else [pool[i] for i in rng.integers(len(pool), size=n)]
    truth_first = balanced_flags(n, rng)
    trials = []
    for item, first in zip(chosen, truth_first):
        s = samples[item.samples["attacked"]]
        names = s.class_names
        truth = names[s.label] if s.label < len(names) else f"class {s.label}"
        after = names[s.label_after] if s.label_after < len(names) else f"class {s.label_after}"
        texts = [truth, after] if first else [after, truth]
        trials.append(TrialSpec(
            condition=s.method, left=Shown(s.id, ADVERSARIAL, s.method), right=None,
            options=[{"value": "1", "text": texts[0]}, {"value": "2", "text": texts[1]}],
            correct="1" if first else "2",
            design={"truth": s.label, "after": s.label_after, "truth_first": bool(first)},
            pool_item=item, is_practice=practice))
    return trials


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    main = frame[~frame["is_practice"]]
    return {
        "overall": statistics.rates_by(main, "is_correct", []),
        "by_dataset": statistics.rates_by(main, "is_correct", ["dataset"]),
        "by_class": statistics.rates_by(main, "is_correct", ["dataset", "truth_name"]),
        "by_method": statistics.rates_by(main, "is_correct", ["method"]),
        "by_dataset_method": statistics.rates_by(main, "is_correct", ["dataset", "method"]),
    }


def figures(analysis: dict) -> dict[str, bytes]:
    from ..figures import rate_bars
    return {"deceitfulness_by_dataset.png": rate_bars(analysis["by_dataset"], "dataset",
                                                      "ground truth chosen (success rate)")}
