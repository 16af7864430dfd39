"""Simulated participants, so a researcher reads the full report (statistics, exclusions,
figures, exports) before any person takes part.

Why through the real path: a simulated participant is started, served, answered and
completed by the same `studies.assignment` functions the API views call, so pools,
clip rules, catch trials, screening, the playback plan and the exclusion rules all run
as they will for people. Simulated participants are flagged (`is_simulated`), take no
stimulus usage and never count toward a target; reports show them only when asked
(`study_report STUDY --simulated`), and then only them.

Policies (`parse_policy`):
- `random`: every option equally likely;
- `oracle`: the answer key where a trial has one; for a trial without one (naturalness) the motion
  with the smaller acceleration deviation;
- `noisy:p`: the oracle, but a random option with probability p;
- `clustered[:rate[,icc]]`: each participant answers by the key with their own
  probability, drawn from a Beta distribution with mean `rate` (default 0.7) and
  intra-participant correlation `icc` (default 0.1), as people differ.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.utils import timezone

from attacks.models import AdversarialSample

from studies import assignment
from studies.models import Participant, Study, Trial


@dataclass(frozen=True)
class Policy:
    kind: str  # random, oracle, noisy, clustered
    noise: float = 0.0
    rate: float = 0.7
    icc: float = 0.1


def parse_policy(text: str) -> Policy:
    """`random`, `oracle`, `noisy:p` or `clustered[:rate[,icc]]`; a clear error otherwise."""
    name, _, arg = text.partition(":")
    try:
        if name in ("random", "oracle") and not arg:
            return Policy(name)
        if name == "noisy":
            p = float(arg)
            if not 0 <= p <= 1:
                raise ValueError
            return Policy("noisy", noise=p)
        if name == "clustered":
            values = [float(v) for v in arg.split(",")] if arg else []
            rate, icc = (values + [0.7, 0.1][len(values):])[:2]
            if not (0 < rate < 1 and 0 < icc < 1) or len(values) > 2:
                raise ValueError
            return Policy("clustered", rate=rate, icc=icc)
    except ValueError:
        pass
    raise ValueError(f"unknown policy {text!r}: use random, oracle, noisy:P (0..1) or clustered[:RATE[,ICC]]")


def _oracle(trial: Trial, metrics: dict[int, float]) -> str:
    if trial.correct:
        return trial.correct
    left, right = trial.left.sample_id, trial.right.sample_id
    return "left" if metrics.get(left, 0.0) <= metrics.get(right, 0.0) else "right"


def _other(trial: Trial, answer: str, rng) -> str:
    """A wrong answer: another decisive option (never 'cannot tell' for a side trial)."""
    options = [v for v in trial.option_values() if v not in (answer, "cannot_tell")]
    return options[int(rng.integers(len(options)))] if options else answer


def choose(policy: Policy, trial: Trial, rng: np.random.Generator, skill: float, metrics: dict[int, float]) -> str:
    """One simulated answer to `trial` (`skill`: this participant's probability of the
    oracle answer under the clustered policy)."""
    values = trial.option_values()
    if policy.kind == "random" or (policy.kind == "noisy" and rng.random() < policy.noise):
        return values[int(rng.integers(len(values)))]
    best = _oracle(trial, metrics)
    if policy.kind == "clustered" and rng.random() >= skill:
        return _other(trial, best, rng)
    return best


def simulate(study: Study, n: int, policy: Policy, seed: int = 0, response_ms: int = 1500) -> list[Participant]:
    """`n` simulated participants who take the whole study and complete it."""
    from studies.views import trial_payload

    rng = np.random.default_rng(seed)
    if policy.kind == "clustered":
        spread = (1 - policy.icc) / policy.icc
        skills = rng.beta(policy.rate * spread, (1 - policy.rate) * spread, size=n)
    else:
        skills = np.ones(n)
    # Their trial lists come from a stream of their own, so the answers' stream is untouched.
    participant_seeds = np.random.default_rng([seed, 1]).integers(2**62, size=n)
    people = []
    for skill, seed_of_participant in zip(skills, participant_seeds):
        participant, _ = assignment.start_participation(
            study, prolific_pid=f"SIM-{secrets.token_hex(6)}", browser={"simulated": policy.kind},
            is_simulated=True, seed=int(seed_of_participant))
        ids = set(participant.trials.values_list("left__sample_id", flat=True)) | \
            set(participant.trials.exclude(right=None).values_list("right__sample_id", flat=True))
        metrics = dict(AdversarialSample.objects.filter(id__in=ids).values_list("id", "acceleration_deviation"))
        total = participant.trials.count()
        while (trial := assignment.current_trial(participant)) is not None:
            plan = trial_payload(trial, study, total, embed=False)["playback"]
            assignment.mark_served(trial, plan)
            # Simulated time: the trial was served as long ago as the playback and a response take.
            served = timezone.now() - timedelta(seconds=plan["total_seconds"], milliseconds=response_ms)
            Trial.objects.filter(pk=trial.pk).update(served_at=served)
            trial.served_at = served
            expected = round(plan["total_seconds"] * 1000, 3)
            log = {"measured_duration_ms": expected, "expected_duration_ms": expected, "page_hidden": False,
                   "frames_drawn": max(1, int(expected * 60 / 1000)), "late_frames": 0,
                   "showings": plan["showings"], "effective_fps": plan["effective_fps"][0]}
            assignment.store_answer(participant, trial, choose(policy, trial, rng, skill, metrics), response_ms, log)
        people.append(assignment.complete(participant))
    return people
