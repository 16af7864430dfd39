"""What every study protocol shares: its configuration schema, the stimulus pool items
it draws from and the trial specifications it produces.

Protocols are plain Python (no ORM): they receive pool items that name samples by id and
return trial specifications; `studies.assignment` turns those into database rows. This
keeps trial-list generation testable at the paper's full counts without a database.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np

# Motion variants a trial can show.
ORIGINAL = "original"
ADVERSARIAL = "adversarial"


class ConfigurationError(ValueError):
    """A study configuration that a protocol cannot run; the message names the key."""


@dataclass(frozen=True)
class SampleInfo:
    """What a protocol needs to know about one adversarial sample to place it in trials."""

    id: int
    clip: int
    recognizer: int
    strategy: str
    method: str
    dataset: str
    label: int
    label_after: int
    success: bool
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolItem:
    """One drawable unit of a study's stimulus pool (its usage is counted in the database).

    `samples` maps a role (a method name, or "attacked") to a sample id.
    """

    condition: str
    samples: dict
    id: int | None = None
    usage: int = 0


@dataclass(frozen=True)
class Shown:
    """One motion shown in a trial: which sample and which of its two motions."""

    sample: int
    variant: str  # ORIGINAL or ADVERSARIAL
    method: str


@dataclass
class TrialSpec:
    """A trial as decided on the server: what is shown where, the answer options in
    display order, and the hidden design (answer key) that never leaves the server."""

    condition: str
    left: Shown
    right: Shown | None
    options: list[dict]
    correct: str = ""
    design: dict = field(default_factory=dict)
    pool_item: PoolItem | None = None
    is_practice: bool = False


COMMON_DEFAULTS = {
    "practice_trials": 2,
    "playback_seconds": 6.0,
    "repeats": 1,
    "slow_motion": 1,
    "screening_threshold": 0.8,
    "datasets": [],
    "recognizers": [],
    "strategies": [],
    "only_successful": True,
    "target_participants": 0,
    "consent_text": "I agree to take part in this study and for my anonymous answers to be stored.",
    "instructions": "",
    "completion_code": "",
    "redirect_url": "",
    "abandon_after_minutes": 60,
    "seed": 0,
}

_TYPES = {
    "trials_per_participant": int, "practice_trials": int, "playback_seconds": (int, float),
    "repeats": int, "slow_motion": int, "screening_threshold": (int, float), "datasets": list,
    "recognizers": list, "strategies": list, "methods": list, "only_successful": bool,
    "target_participants": int, "consent_text": str, "instructions": str, "completion_code": str,
    "redirect_url": str, "abandon_after_minutes": (int, float), "seed": int, "sensitivity_share": (int, float),
}


def validate_common(config: dict, defaults: dict) -> dict:
    """Fill defaults and check types and ranges of the keys every protocol understands."""
    if not isinstance(config, dict):
        raise ConfigurationError("configuration must be a JSON object")
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigurationError(f"unknown configuration keys: {', '.join(unknown)}")
    out = {**defaults, **config}
    for key, value in out.items():
        expected = _TYPES.get(key)
        if expected and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise ConfigurationError(f"{key} must be of type {getattr(expected, '__name__', 'number')}, got {value!r}")
    if out["trials_per_participant"] < 1:
        raise ConfigurationError("trials_per_participant must be at least 1")
    if out["practice_trials"] < 0:
        raise ConfigurationError("practice_trials cannot be negative")
    if out["playback_seconds"] <= 0:
        raise ConfigurationError("playback_seconds must be positive")
    if out["repeats"] < 1:
        raise ConfigurationError("repeats must be at least 1")
    if out["slow_motion"] not in (1, 3):
        raise ConfigurationError("slow_motion must be 1 (real time) or 3 (three times slower)")
    if not 0 <= out["screening_threshold"] <= 1:
        raise ConfigurationError("screening_threshold must lie in [0, 1]")
    if out["target_participants"] < 0:
        raise ConfigurationError("target_participants cannot be negative")
    if out["abandon_after_minutes"] <= 0:
        raise ConfigurationError("abandon_after_minutes must be positive")
    for key in ("datasets", "recognizers", "strategies", "methods"):
        if key in out and not all(isinstance(v, str) for v in out[key]):
            raise ConfigurationError(f"{key} must be a list of names")
    if not out["completion_code"]:
        out["completion_code"] = secrets.token_hex(4).upper()
    return out


def least_used(pool: list[PoolItem], n: int, rng: np.random.Generator) -> list[PoolItem]:
    """`n` pool items, least used first (random among ties), cycling through the pool
    again (sampling with replacement) when it holds fewer than `n` items."""
    if not pool:
        raise ConfigurationError("the stimulus pool is empty: no samples match the study's filters")
    usage = np.array([p.usage for p in pool], dtype=float)
    order = np.lexsort((rng.random(len(pool)), usage))
    chosen = [pool[i] for i in order[:n]]
    while len(chosen) < n:
        again = rng.permutation(len(pool))[: n - len(chosen)]
        chosen.extend(pool[i] for i in again)
    return chosen


def balanced_flags(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` booleans, half of them True (one more when `n` is odd, by chance), shuffled:
    counterbalances left/right placement within each participant."""
    flags = np.zeros(n, dtype=bool)
    flags[: n // 2 + (int(rng.integers(2)) if n % 2 else 0)] = True
    return rng.permutation(flags)


def balanced_conditions(conditions: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """`n` condition names as evenly spread as possible (counts differ by at most one), shuffled."""
    extra = rng.permutation(len(conditions))
    counts = np.full(len(conditions), n // len(conditions))
    counts[extra[: n % len(conditions)]] += 1
    out = [c for c, k in zip(conditions, counts) for _ in range(k)]
    return [out[i] for i in rng.permutation(n)]


def side_options() -> list[dict]:
    return [{"value": "left", "text": "Left"}, {"value": "right", "text": "Right"},
            {"value": "cannot_tell", "text": "Cannot tell"}]


def change_options() -> list[dict]:
    return [{"value": "changed", "text": "Changed"}, {"value": "unchanged", "text": "Not changed"}]
