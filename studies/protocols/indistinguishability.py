"""Indistinguishability (paper §4.5): can people see that a motion was changed at all?

Each trial shows two motions side by side; the left is always the original (the
participant is told so). The right is the same original (a sensitivity trial) or its
attacked version (a perceivability trial); the share of sensitivity trials is
configurable (`sensitivity_share`, default one half). Motions play for 6 s, optionally
three times slower; the answer is 'changed' or 'unchanged'. Each trial shows a clip of
its own (a clip's sensitivity and attacked trials would show it twice). Catch trials
(`catch_share`) put a grossly broken copy on the right: 'changed'.

Records: 'changed' / 'unchanged'. Analysis: participants below the screening threshold
on sensitivity trials are screened out (kept and flagged, excluded from the statistics);
then the share of attacked motions judged unchanged with Wilson intervals per method and
dataset, and d′ (hits: attacked judged changed; false alarms: originals judged changed)
under the same–different (differencing) model, the headline since each trial asks
whether two motions differ; the yes/no z(H) − z(F) is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from studies.core import statistics
from studies.core.inference import d_prime_same_different
from studies.protocols import base
from studies.protocols.base import (ADVERSARIAL, BROKEN, CATCH, ORIGINAL, SENSITIVITY, ConfigurationError, PoolItem,
                                    SampleInfo, Shown, TrialSpec, analysable, catch_count, change_options, draw_items,
                                    names, shuffled)

KIND = "indistinguishability"
TITLE = "Indistinguishability"


@dataclass(frozen=True)
class Parameters(base.Parameters):
    trials_per_participant: int = 100
    methods: list[str] = names("smart")
    # Share of trials that show the original on both sides (the screening trials).
    sensitivity_share: float = 0.5

    def check(self):
        super().check()
        if not 0 < self.sensitivity_share < 1:
            raise ConfigurationError("sensitivity_share must lie strictly between 0 and 1")


PROMPT = "The left motion is the original. Is the right motion a changed version of it?"
# The participant is told that the left motion is the original.
VIEW_LABELS = ["Left: original", "Right"]
RECORDS = {"answer": "'changed' or 'unchanged'"}
# The handle a catch trial's broken motion is drawn from: ordinary trials show originals
# on both sides and attacked motions on the right only, so (adversarial, left) is free.
BROKEN_VIEW = (ADVERSARIAL, "left")
TABLE4 = True
VERDICT = "judged_changed"
VERDICT_MEANING = "share judging it changed"


def pool_items(samples: list[SampleInfo], config: dict) -> list[PoolItem]:
    return [PoolItem(condition=s.method, samples={"attacked": s.id}) for s in samples
            if s.method in config["methods"] and (s.success or not config["only_successful"])]


def pair_trial(item: PoolItem, samples: dict[int, SampleInfo], attacked: bool, practice: bool,
               condition: str | None = None) -> TrialSpec:
    """Original on the left; on the right the same original or the attacked motion."""
    sid = next(iter(item.samples.values())) if "attacked" not in item.samples else item.samples["attacked"]
    s = samples[sid]
    right = Shown(s.id, ADVERSARIAL, s.method) if attacked else Shown(s.id, ORIGINAL, "original")
    return TrialSpec(condition=condition or (s.method if attacked else SENSITIVITY),
                     left=Shown(s.id, ORIGINAL, "original"), right=right, options=change_options(),
                     correct="changed" if attacked else "unchanged",
                     design={"right_method": right.method}, pool_item=item, is_practice=practice)


def catch_trial(item: PoolItem, samples: dict[int, SampleInfo], sample: int | None = None) -> TrialSpec:
    """The original on the left, a grossly broken copy of it on the right: 'changed'."""
    s = samples[sample if sample is not None else next(iter(item.samples.values()))]
    return TrialSpec(condition=CATCH, left=Shown(s.id, ORIGINAL, ORIGINAL),
                     right=Shown(s.id, BROKEN_VIEW[0], BROKEN, side=BROKEN_VIEW[1]), options=change_options(),
                     correct="changed", design={"right_method": BROKEN, "catch": True}, pool_item=item)


def build_trials(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict,
                 rng: np.random.Generator, n: int | None = None, practice: bool = False) -> list[TrialSpec]:
    """`n` trials on distinct clips (a clip's sensitivity and attacked trials would be
    the same clip twice), plus `catch_count` catch trials at random positions."""
    n = config["trials_per_participant"] if n is None else n
    chosen, catch = draw_items(pool, samples, config, rng, n, 0 if practice else catch_count(config))
    n_sens = int(round(n * config["sensitivity_share"]))
    if practice:
        n_sens = n // 2
    attacked = rng.permutation(np.arange(n) >= n_sens)
    trials = [pair_trial(item, samples, bool(a), practice) for item, a in zip(chosen, attacked)]
    return shuffled(trials + [catch_trial(item, samples) for item in catch], rng) if catch else trials


def verdict_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per answered trial with an attacked motion on the right (not the
    sensitivity or catch trials): judged changed or not."""
    t = trials[trials["answer"].notna()]
    attacked = t[(t["right_shows"] == ADVERSARIAL) & ~t["condition"].isin([SENSITIVITY, CATCH])]
    return pd.DataFrame({"participant": attacked["participant"], "sample": attacked["right_sample"],
                         "method": attacked["method"], VERDICT: attacked["answer"] == "changed"})


def analyse(frame: pd.DataFrame, config: dict) -> dict:
    main = analysable(frame)
    screen = statistics.screening(main, config["screening_threshold"])
    kept = main[main["participant"].isin(screen.loc[screen["passed"], "participant"])]
    per_participant = []
    for pid, part in kept.groupby("participant"):
        att = part[part["condition"] != SENSITIVITY]
        sens = part[part["condition"] == SENSITIVITY]
        counts = (int((att["answer"] == "changed").sum()), len(att), int((sens["answer"] == "changed").sum()),
                  len(sens))
        per_participant.append({"participant": pid, "d_prime": d_prime_same_different(*counts),
                                "d_prime_yes_no": statistics.d_prime(*counts)})
    return {
        "screening": screen.to_dict("records"),
        "participants_kept": int(screen["passed"].sum()),
        "participants_screened_out": int((~screen["passed"]).sum()),
        "overall": statistics.detection_table(kept, []),
        "by_method": statistics.detection_table(kept, ["method"]),
        "by_dataset": statistics.detection_table(kept, ["dataset"]),
        "by_method_dataset": statistics.detection_table(kept, ["method", "dataset"]),
        "per_participant_d_prime": per_participant,
    }


def figures(analysis: dict) -> dict[str, bytes]:
    from studies.core.figures import rate_bars
    return {f"{KIND}_unchanged_by_method.png": rate_bars(analysis["by_method"], "method",
                                                         "attacked motions judged unchanged")}
