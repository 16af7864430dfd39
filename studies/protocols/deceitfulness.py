"""Deceitfulness (paper §4.5): does the attack change what the motion looks like it is?

One attacked motion is played (6 s by default); the participant then picks which of two
labels describes it: the ground truth or the recognizer's after-attack label, in an
order randomised (and balanced) per participant. Success = the ground truth is chosen.
No clip is shown twice to one participant (two methods' versions of a clip would give
the answer away). Catch trials (`catch_share`) show an unattacked original with its true
label against another class of the dataset.

Records: the chosen option. Analysis: success rate with Wilson 95% intervals overall and
per dataset, ground-truth class and method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from studies.core import statistics
from studies.protocols import base
from studies.protocols.base import (ADVERSARIAL, CATCH, ORIGINAL, PoolItem, SampleInfo, Shown, TrialSpec, analysable,
                                    balanced_flags, catch_count, class_name, draw_items, names, other_label, shuffled)

KIND = "deceitfulness"
TITLE = "Deceitfulness"


@dataclass(frozen=True)
class Parameters(base.Parameters):
    trials_per_participant: int = 100
    methods: list[str] = names("smart")


PROMPT = "Which label best describes the motion?"
# The paper shows the two labels after the motion, so they cannot steer what is watched.
OPTIONS_AFTER_PLAYBACK = True
VIEW_LABELS = ["Motion"]
RECORDS = {"answer": "value of the chosen label option ('1' or '2', in display order)"}
COLUMN_NOTES = {"trials.csv": {"truth": "the label shown beside the after-attack one",
                               "chosen_name": "the class name the participant chose"}}
# The attack fooled the person: they chose the recognizer's after-attack label.
VERDICT = "chose_attacked_label"
VERDICT_MEANING = "share choosing the recognizer's after-attack label"


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    """One item per attacked sample whose after-attack label differs from the truth."""
    return [PoolItem(condition=s.method, samples={"attacked": s.id}) for s in samples
            if s.method in config["methods"] and s.label_after != s.label
            and (s.success or not config["only_successful"])]


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    """`n` label trials on distinct clips, plus `catch_count` catch trials (never in
    practice): the unattacked original with its true label against another class of the
    dataset, which anyone who watched gets right. Catch trials sit at random positions."""
    n = config["trials_per_participant"] if n is None else n
    chosen, catch = draw_items(pool, samples, config, rng, n, 0 if practice else catch_count(config))
    trials = []
    for item, first in zip(chosen, balanced_flags(n, rng)):
        s = samples[item.samples["attacked"]]
        trials.append(_label_trial(s, item, s.label_after, bool(first), practice, s.method,
                                   Shown(s.id, ADVERSARIAL, s.method), {"after": s.label_after}))
    catch_trials = []
    for item, first in zip(catch, balanced_flags(len(catch), rng)):
        s = samples[item.samples["attacked"]]
        wrong = other_label(s, rng)
        catch_trials.append(_label_trial(s, item, wrong, bool(first), practice, CATCH,
                                         Shown(s.id, ORIGINAL, ORIGINAL), {"wrong": wrong, "catch": True}))
    return shuffled(trials + catch_trials, rng) if catch_trials else trials


def _label_trial(s: SampleInfo, item: PoolItem, other: int, truth_first: bool, practice: bool, condition: str,
                 shown: Shown, design: dict) -> TrialSpec:
    """One motion, then its true label and `other` in the given order (correct: the truth)."""
    texts = [class_name(s, s.label), class_name(s, other)]
    texts = texts if truth_first else texts[::-1]
    return TrialSpec(condition=condition, left=shown, right=None,
                     options=[{"value": "1", "text": texts[0]}, {"value": "2", "text": texts[1]}],
                     correct="1" if truth_first else "2",
                     design={"truth": s.label, **design, "truth_first": truth_first},
                     pool_item=item, is_practice=practice)


def trial_columns(design: dict, options: list[dict], answer) -> dict:
    """The chosen option is a class label: trials.csv carries its text (`chosen_name`)."""
    chosen = next((o["text"] for o in options if o["value"] == answer), None)
    return {**base.trial_columns(design, options, answer), "chosen_name": chosen}


def verdict_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per answered attacked motion (catch trials show none): fooled when the
    truth was not chosen."""
    attacked = trials[trials["answer"].notna() & (trials["condition"] != CATCH)]
    return pd.DataFrame({"participant": attacked["participant"], "sample": attacked["sample"],
                         "method": attacked["method"], VERDICT: ~attacked["is_correct"].astype(bool)})


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    main = analysable(frame)
    return {
        "overall": statistics.rates_by(main, "is_correct", []),
        "by_dataset": statistics.rates_by(main, "is_correct", ["dataset"]),
        "by_class": statistics.rates_by(main, "is_correct", ["dataset", "truth_name"]),
        "by_method": statistics.rates_by(main, "is_correct", ["method"]),
        "by_dataset_method": statistics.rates_by(main, "is_correct", ["dataset", "method"]),
    }


def figures(analysis: dict) -> dict[str, bytes]:
    from studies.core.figures import rate_bars
    return {"deceitfulness_by_dataset.png": rate_bars(analysis["by_dataset"], "dataset",
                                                      "ground truth chosen (success rate)")}
