"""A study kind that exists only for tests/test_studies_new_kind.py: "spot the attack".

One original and its attacked version side by side, the attacked one on a side balanced
within each participant; the participant says which side was changed. It is written as
a new kind would be: this module, its `register` call (in the test) and its instructions
template (tests/templates/participant/instructions/spot.html), nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from studies.core import statistics
from studies.protocols import base
from studies.protocols.base import (ADVERSARIAL, ORIGINAL, PoolItem, SampleInfo, Shown, TrialSpec, analysable,
                                    balanced_flags, draw_items)

KIND = "spot"
TITLE = "Spot the attack"


@dataclass(frozen=True)
class Parameters(base.Parameters):
    trials_per_participant: int = 10


PROMPT = "Which motion was changed?"
RECORDS = {"answer": "'left' or 'right'"}


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    return [PoolItem(condition=s.method, samples={"attacked": s.id}) for s in samples
            if s.method in config["methods"] and (s.success or not config["only_successful"])]


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    n = config["trials_per_participant"] if n is None else n
    chosen, _ = draw_items(pool, samples, config, rng, n)
    trials = []
    for item, attacked_left in zip(chosen, balanced_flags(n, rng)):
        s = samples[item.samples["attacked"]]
        original, attacked = Shown(s.id, ORIGINAL, ORIGINAL), Shown(s.id, ADVERSARIAL, s.method)
        left, right = (attacked, original) if attacked_left else (original, attacked)
        trials.append(TrialSpec(condition=s.method, left=left, right=right,
                                options=[{"value": "left", "text": "Left"}, {"value": "right", "text": "Right"}],
                                correct="left" if attacked_left else "right", pool_item=item, is_practice=practice))
    return trials


def trial_columns(design: dict, options: list[dict], answer) -> dict:
    """The attacked motion may be on either side: its method is the one that is not the original."""
    left, right = design.get("left_method"), design.get("right_method")
    return {"method": left if right == ORIGINAL else right, "chosen_name": None}


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    main = analysable(frame)
    return {"overall": statistics.rates_by(main, "is_correct", []),
            "by_method": statistics.rates_by(main, "is_correct", ["method"])}


def figures(analysis: dict) -> dict[str, bytes]:
    return {}
