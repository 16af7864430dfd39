"""Comparison (paper §4.7, Table 4): indistinguishability of SMART against IAA and CIASA.

The indistinguishability design with the right motion drawn evenly from four conditions:
the original itself and the SMART, IAA and CIASA versions (120 pairs, 30 each, in the
paper). Each pool item is one motion attacked by every compared method, so the
conditions show the same motions.

Records: 'changed' / 'unchanged'. Analysis as for indistinguishability, per method.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from studies.protocols.base import (ConfigurationError, PoolItem, SampleInfo, TrialSpec, COMMON_DEFAULTS, balanced_conditions,
                   catch_count, draw_items, shuffled, validate_common)
from studies.protocols import indistinguishability
from studies.protocols.indistinguishability import SENSITIVITY

KIND = "comparison"
TITLE = "Comparison of attacks"
DEFAULTS = {**COMMON_DEFAULTS, "trials_per_participant": 120, "methods": ["smart", "iaa", "ciasa"]}
PROMPT = indistinguishability.PROMPT
RECORDS = indistinguishability.RECORDS
BROKEN_VIEW = indistinguishability.BROKEN_VIEW


def validate(config: dict) -> dict:
    out = validate_common(config, DEFAULTS)
    if not out["methods"]:
        raise ConfigurationError("methods must name at least one attack method")
    return out


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    """One item per motion (clip, recognizer, strategy) attacked by every compared method."""
    groups = defaultdict(dict)
    for s in samples:
        if s.method in config["methods"] and (s.success or not config["only_successful"]):
            groups[(s.clip, s.recognizer, s.strategy)].setdefault(s.method, s.id)
    return [PoolItem(condition="motion", samples=dict(sorted(g.items()))) for _, g in sorted(groups.items())
            if set(config["methods"]) <= set(g)]


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    n = config["trials_per_participant"] if n is None else n
    chosen, catch = draw_items(pool, samples, config, rng, n, 0 if practice else catch_count(config))
    conditions = balanced_conditions([SENSITIVITY, *config["methods"]], n, rng)
    trials = []
    for item, condition in zip(chosen, conditions):
        if condition == SENSITIVITY:
            one = PoolItem(item.condition, {"attacked": item.samples[config["methods"][0]]}, item.id, item.usage)
            spec = indistinguishability.pair_trial(one, samples, attacked=False, practice=practice)
        else:
            one = PoolItem(item.condition, {"attacked": item.samples[condition]}, item.id, item.usage)
            spec = indistinguishability.pair_trial(one, samples, attacked=True, practice=practice)
        spec.pool_item = item
        trials.append(spec)
    if catch:  # the original against a broken copy, as in indistinguishability
        trials = shuffled(trials + [indistinguishability.catch_trial(item, samples, item.samples[config["methods"][0]])
                                    for item in catch], rng)
    return trials


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    return indistinguishability.analyse(frame, config)


def figures(analysis: dict) -> dict[str, bytes]:
    from studies.core.figures import rate_bars
    return {f"{KIND}_unchanged_by_method.png": rate_bars(analysis["by_method"], "method",
                                                         "attacked motions judged unchanged")}
