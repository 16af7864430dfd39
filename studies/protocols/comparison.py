"""Comparison (paper §4.7, Table 4): indistinguishability of SMART against IAA and CIASA.

The indistinguishability design with the right motion drawn evenly from four conditions:
the original itself and the SMART, IAA and CIASA versions (120 pairs, 30 each, in the
paper). Each pool item is one motion attacked by every compared method, so the
conditions show the same motions.

Records: 'changed' / 'unchanged'. Analysis as for indistinguishability, per method.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from studies.protocols import base, indistinguishability
from studies.protocols.base import (SENSITIVITY, PoolItem, SampleInfo, TrialSpec, balanced_conditions, catch_count,
                                    draw_items, names, shuffled)

KIND = "comparison"
TITLE = "Comparison of attacks"


@dataclass(frozen=True)
class Parameters(base.Parameters):
    trials_per_participant: int = 120
    methods: list[str] = names("smart", "iaa", "ciasa")


# Shown, asked, recorded and judged as in indistinguishability.
PROMPT = indistinguishability.PROMPT
VIEW_LABELS = indistinguishability.VIEW_LABELS
INSTRUCTIONS_TEMPLATE = base.instructions_template(indistinguishability.KIND)
RECORDS = indistinguishability.RECORDS
BROKEN_VIEW = indistinguishability.BROKEN_VIEW
TABLE4 = True
VERDICT = indistinguishability.VERDICT
VERDICT_MEANING = indistinguishability.VERDICT_MEANING
verdict_rows = indistinguishability.verdict_rows


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
