"""Naturalness (paper §4.5): which perceptual loss gives the most natural attacked motion?

Each selected motion yields two trials: SMART against one ablation drawn from {l2, l2-acc,
l2-bone}, and two different ablations against each other. Both motions are shown side by
side and played together (6 s, twice); the participant answers left, right or cannot tell.
Left/right placement is balanced within each participant and trials are shuffled.
A participant meets each motion (source clip) in its two trials only. Catch trials
(`catch_share`) put the motion's original against a grossly broken copy; correct: the
original's side.

Records: 'left' / 'right' / 'cannot_tell'. Analysis: for each method pair the
proportions and a binomial test on decisive answers, each method's normalised preference
(share of its comparisons it won), and a Bradley–Terry ranking with Wald intervals.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from studies.core import statistics
from studies.protocols import base
from studies.protocols.base import (ADVERSARIAL, BROKEN, CATCH, ORIGINAL, ConfigurationError, PoolItem, SampleInfo,
                                    Shown, TrialSpec, balanced_flags, catch_count, draw_items, names, side_options)

KIND = "naturalness"
TITLE = "Naturalness"
PROPOSED = "smart"
ABLATIONS = ("l2", "l2-acc", "l2-bone")


@dataclass(frozen=True)
class Parameters(base.Parameters):
    trials_per_participant: int = 100
    repeats: int = 2
    methods: list[str] = names(PROPOSED, *ABLATIONS)

    def check(self):
        super().check()
        if PROPOSED not in self.methods or len(set(self.methods) & set(ABLATIONS)) < 2:
            raise ConfigurationError("naturalness needs smart and at least two of l2, l2-acc, l2-bone in methods")


PROMPT = "Which motion looks more natural?"
RECORDS = {"answer": "'left', 'right' or 'cannot_tell'"}
COLUMN_NOTES = {"trials.csv": {"condition": "here 'smart-vs-ablation' or 'ablation-vs-ablation'",
                               "method": "empty here: each trial shows two attacked motions (left_method, "
                                         "right_method)"}}
# Each pool item (one motion) gives two trials: one clip use per participant.
TRIALS_PER_ITEM = 2
# The handle a catch trial's broken motion is drawn from: ordinary trials show attacked
# motions only, so the originals' handles are free; (original, left) is the intact one.
BROKEN_VIEW = (ORIGINAL, "right")
# One row per motion shown: the one not chosen is the less natural of its pair.
VERDICT = "judged_less_natural"
VERDICT_MEANING = "share judging it the less natural of its pair"


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    """One item per motion (clip, recognizer, strategy) attacked by SMART and by at least
    two ablations."""
    groups = defaultdict(dict)
    for s in samples:
        if s.method in config["methods"] and (s.success or not config["only_successful"]):
            groups[(s.clip, s.recognizer, s.strategy)].setdefault(s.method, s.id)
    return [PoolItem(condition="motion", samples=dict(sorted(g.items()))) for _, g in sorted(groups.items())
            if PROPOSED in g and len(set(g) & set(ABLATIONS)) >= 2]


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    n = config["trials_per_participant"] if n is None else n
    motions = -(-n // TRIALS_PER_ITEM)
    chosen, catch = draw_items(pool, samples, config, rng, motions, 0 if practice else catch_count(config))
    pairs = []
    for item in chosen:
        ablations = [m for m in ABLATIONS if m in item.samples and m in config["methods"]]
        pairs.append(("smart-vs-ablation", item, (PROPOSED, ablations[rng.integers(len(ablations))])))
        a, b = rng.choice(len(ablations), size=2, replace=False)
        pairs.append(("ablation-vs-ablation", item, (ablations[a], ablations[b])))
    pairs = pairs[:n]
    # Counterbalance within each trial type: SMART is on the left in half of its trials.
    swap = np.zeros(len(pairs), dtype=bool)
    for condition in ("smart-vs-ablation", "ablation-vs-ablation"):
        idx = [i for i, p in enumerate(pairs) if p[0] == condition]
        swap[idx] = balanced_flags(len(idx), rng)
    order = rng.permutation(len(pairs)) if not practice else np.arange(len(pairs))
    trials = []
    for i in order:
        condition, item, (m1, m2) = pairs[i]
        flip = swap[i]
        left, right = (m2, m1) if flip else (m1, m2)
        trials.append(TrialSpec(
            condition=condition,
            left=Shown(item.samples[left], ADVERSARIAL, left), right=Shown(item.samples[right], ADVERSARIAL, right),
            options=side_options(), correct="", design={"left_method": left, "right_method": right},
            pool_item=item, is_practice=practice))
    if catch:
        trials = _with_catch_trials(trials, catch, rng)
    return trials


def _with_catch_trials(trials: list[TrialSpec], catch: list[PoolItem], rng: np.random.Generator) -> list[TrialSpec]:
    """Catch trials at random positions: a motion's unattacked original against a grossly
    broken copy of it (drawn from BROKEN_VIEW), the original on a balanced side; correct:
    the original's side."""
    out = list(trials)
    for item, broken_left in zip(catch, balanced_flags(len(catch), rng)):
        sid = item.samples[PROPOSED] if PROPOSED in item.samples else next(iter(item.samples.values()))
        intact = Shown(sid, ORIGINAL, ORIGINAL, side="left")
        broken = Shown(sid, BROKEN_VIEW[0], BROKEN, side=BROKEN_VIEW[1])
        left, right = (broken, intact) if broken_left else (intact, broken)
        spec = TrialSpec(condition=CATCH, left=left, right=right, options=side_options(),
                         correct="right" if broken_left else "left",
                         design={"left_method": left.method, "right_method": right.method, "catch": True},
                         pool_item=item)
        out.insert(int(rng.integers(len(out) + 1)), spec)
    return out


def trial_columns(design: dict, options: list[dict], answer) -> dict:
    """Two attacked motions per trial: no single `method` (left_method, right_method say)."""
    return {**base.trial_columns(design, options, answer), "method": None}


def verdict_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Two rows per decisive answer ('cannot tell' left out), one per motion shown: the
    motion not chosen was judged the less natural."""
    decisive = trials[trials["answer"].isin(["left", "right"])]
    left = pd.DataFrame({"participant": decisive["participant"], "sample": decisive["sample"],
                         "method": decisive["left_method"], VERDICT: decisive["answer"] == "right"})
    right = pd.DataFrame({"participant": decisive["participant"], "sample": decisive["right_sample"],
                          "method": decisive["right_method"], VERDICT: decisive["answer"] == "left"})
    return pd.concat([left, right], ignore_index=True)


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    """Per method pair: the answer shares and an exact binomial test on the decisive
    answers, Holm-corrected over the pairs; per method: the share of its comparisons it
    won (participant-aware intervals beside the pooled one); the Bradley–Terry ranking."""
    main = frame[~frame["is_practice"]]
    decisive = main[main["answer"].isin(["left", "right"])]
    wins = [(r.left_method, r.right_method) if r.answer == "left" else (r.right_method, r.left_method)
            for r in decisive.itertuples()]
    methods = [m for m in Parameters.defaults()["methods"] if m in config["methods"]]
    preference = []
    for m in methods:
        shown = main[(main["left_method"] == m) | (main["right_method"] == m)]
        won = ((shown["answer"] == "left") & (shown["left_method"] == m)) | \
              ((shown["answer"] == "right") & (shown["right_method"] == m))
        part = pd.DataFrame({"won": won.to_numpy(bool)})
        if "participant" in shown:
            part["participant"] = shown["participant"].to_numpy()
        preference.append({"method": m, **statistics.rate_row(part, "won")})
    from studies.core.inference import holm_binomial_tests
    return {
        "pairs": holm_binomial_tests(statistics.preference_counts(main)),
        "normalised_preference": preference,
        "bradley_terry": statistics.bradley_terry(methods, wins),
    }


def figures(analysis: dict) -> dict[str, bytes]:
    from studies.core.figures import preference_bars
    return {"naturalness_preference.png": preference_bars(analysis["pairs"], analysis["normalised_preference"])}
