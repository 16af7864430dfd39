"""What every study protocol shares: its typed parameters (`Parameters`, which each
protocol subclasses), the stimulus pool items it draws from, the trial specifications it
produces, and the defaults of what a protocol may leave undeclared (`OPTIONAL`,
`trial_columns`, `verdict_rows`; see `studies.protocols` for the whole list).

Protocols are plain Python (no ORM): they receive pool items that name samples by id and
return trial specifications; `studies.assignment` turns those into database rows. This
keeps trial-list generation testable at the paper's full counts without a database.
"""
from __future__ import annotations

import copy
import typing
from dataclasses import MISSING, dataclass, field, fields

import numpy as np

from studies.core.errors import StudyInputError
from attacks.core.data.labels import PARTICIPANT_UNNAMED, label_name
from studies.core.participation_config import PARTICIPATION_DEFAULTS, validate_participation

# Motion variants a trial can show.
ORIGINAL = "original"
ADVERSARIAL = "adversarial"
# Catch trials (condition CATCH) may show a grossly broken copy of an original: the
# method name BROKEN in the design, drawn from the handle in the protocol's BROKEN_VIEW
# (variant, side), a handle its ordinary trials never use (see studies.views.motion_json).
CATCH = "catch"
BROKEN = "broken"
# The condition of a trial that shows an original against itself: participants who
# call too many of these 'changed' are screened out (`screening_threshold`).
SENSITIVITY = "sensitivity"


class ConfigurationError(StudyInputError):
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
    # Which of the sample's two handles of that variant (default: the trial side it is
    # shown on). Catch trials use it to reach the protocol's BROKEN_VIEW handle.
    side: str | None = None


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


def names(*values: str):
    """A list default (a fresh copy per instance): datasets, strategies, methods."""
    return field(default_factory=lambda: list(values))


@dataclass(frozen=True)
class Parameters:
    """The typed study-design parameters every protocol understands, with their defaults.

    A protocol subclasses it (`class Parameters(base.Parameters)`) to change a default or
    add a parameter, and extends `check` for its own rules. What is stored on a study is
    still the plain JSON object (`validate` returns it with every default filled in), so
    studies stored before this class existed read as they did; the class is where a key's
    type, default and check are declared, in one place. Construction runs the checks.
    """

    trials_per_participant: int = 100
    practice_trials: int = 2
    playback_seconds: float = 6.0
    repeats: int = 1
    slow_motion: int = 1
    repeat_pause_seconds: float = 0.5
    screening_threshold: float = 0.8
    datasets: list[str] = names()
    recognizers: list[str] = names()
    # The paper's stimuli are AB (any-but-the-truth) attacks; others only when chosen.
    strategies: list[str] = names("ab")
    # The attack methods whose samples the study shows (the paper's proposed one by default).
    methods: list[str] = names("smart")
    only_successful: bool = True
    target_participants: int = 0
    consent_text: str = "I agree to take part in this study and for my anonymous answers to be stored."
    instructions: str = ""
    completion_code: str = ""
    redirect_url: str = ""
    abandon_after_minutes: float = 60
    seed: int = 0
    # Pools (see `least_used`): one source clip at most once per participant unless allowed.
    allow_clip_repeats: bool = False
    # Catch trials per main trial (0.1 adds 10 to 100 trials; the paper has none) and
    # the share of them a participant must get right to stay in the analyses.
    catch_share: float = 0.0
    catch_threshold: float = 0.8
    # Trial exclusions in the analyses (studies.reports): late frames as a share of
    # frames drawn, and |measured - expected| playback duration as a share of expected.
    max_late_frame_share: float = 0.25
    max_duration_error: float = 0.1

    def __post_init__(self):
        self.check()

    def check(self):
        """Ranges and rules (a ConfigurationError naming the key); types are checked before."""
        if self.trials_per_participant < 1:
            raise ConfigurationError("trials_per_participant must be at least 1")
        if self.practice_trials < 0:
            raise ConfigurationError("practice_trials cannot be negative")
        if self.playback_seconds <= 0:
            raise ConfigurationError("playback_seconds must be positive")
        if not 0 <= self.repeat_pause_seconds <= 10:
            raise ConfigurationError("repeat_pause_seconds must lie in [0, 10]")
        if self.repeats < 1:
            raise ConfigurationError("repeats must be at least 1")
        if self.slow_motion not in (1, 3):
            raise ConfigurationError("slow_motion must be 1 (real time) or 3 (three times slower)")
        if not 0 <= self.screening_threshold <= 1:
            raise ConfigurationError("screening_threshold must lie in [0, 1]")
        if self.target_participants < 0:
            raise ConfigurationError("target_participants cannot be negative")
        if self.abandon_after_minutes <= 0:
            raise ConfigurationError("abandon_after_minutes must be positive")
        for key in ("catch_share", "catch_threshold", "max_late_frame_share"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigurationError(f"{key} must lie in [0, 1]")
        if self.max_duration_error <= 0:
            raise ConfigurationError("max_duration_error must be positive (a share of the expected duration)")
        if not self.methods:
            raise ConfigurationError("methods must name at least one attack method")

    @classmethod
    def defaults(cls) -> dict:
        """Every key a study of this protocol stores, with its default (the participation
        keys of `studies.core.participation_config` included)."""
        out = {f.name: f.default_factory() if f.default_factory is not MISSING else f.default for f in fields(cls)}
        return {**out, **copy.deepcopy(PARTICIPATION_DEFAULTS)}

    @classmethod
    def validate(cls, config: dict) -> dict:
        """`config` (a stored or submitted JSON object) with defaults filled in, after its
        keys, types and ranges were checked; the participation keys are checked and
        completed (outcome codes drawn once) by `validate_participation`."""
        if not isinstance(config, dict):
            raise ConfigurationError("configuration must be a JSON object")
        defaults = cls.defaults()
        unknown = sorted(set(config) - set(defaults))
        if unknown:
            raise ConfigurationError(f"unknown configuration keys: {', '.join(unknown)}")
        out = {**defaults, **config}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            _check_type(f.name, out[f.name], hints[f.name])
        cls(**{f.name: out[f.name] for f in fields(cls)})  # runs `check`
        validate_participation(out, ConfigurationError)  # fills completion_code and the other outcomes' codes
        return out


def _check_type(key: str, value, hint):
    """JSON-typed check of one value against its declared type: a float accepts any number
    (never a boolean), an int no boolean, a list[str] only names."""
    origin = typing.get_origin(hint) or hint
    if origin is float:
        ok, name = isinstance(value, (int, float)) and not isinstance(value, bool), "number"
    elif origin is int:
        ok, name = isinstance(value, int) and not isinstance(value, bool), "int"
    else:
        ok, name = isinstance(value, origin), origin.__name__
    if not ok:
        raise ConfigurationError(f"{key} must be of type {name}, got {value!r}")
    if origin is list and typing.get_args(hint) == (str,) and not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{key} must be a list of names")


def clips_of(item: PoolItem, samples: dict[int, SampleInfo]) -> frozenset:
    """The source clips (Clip ids) a pool item shows: one for every protocol today."""
    return frozenset(samples[sid].clip for sid in item.samples.values())


def least_used(pool: list[PoolItem], n: int, rng: np.random.Generator, samples: dict | None = None,
               distinct_clips: bool = False, most_used: bool = False) -> list[PoolItem]:
    """`n` different pool items, least used first (random among ties; `most_used` turns
    the order round). With `samples` and `distinct_clips`, each source clip is taken
    once: a clip seen twice (attacked by two methods, or as a sensitivity and an
    attacked trial) would reveal answers.

    Never samples with replacement: a pool that cannot give `n` items is a
    ConfigurationError with the numbers (`check_capacity` says so before any
    participant arrives)."""
    if n <= 0:
        return []
    if not pool:
        raise ConfigurationError("the stimulus pool is empty: no samples match the study's filters")
    usage = np.array([p.usage for p in pool], dtype=float)
    order = np.lexsort((rng.random(len(pool)), -usage if most_used else usage))
    chosen, seen = [], set()
    for i in order:
        clips = clips_of(pool[i], samples) if samples is not None else frozenset()
        if distinct_clips and clips & seen:
            continue
        chosen.append(pool[i])
        seen |= clips
        if len(chosen) == n:
            return chosen
    what = f"{len(seen)} distinct clips" if distinct_clips else f"{len(chosen)} usable items"
    raise ConfigurationError(f"the stimulus pool holds {what} for this draw, {n} are needed "
                             "(never drawn with replacement)")


def items_needed(protocol, trials: int) -> int:
    """Pool items (so clips) that `trials` trials of `protocol` take: naturalness shows
    each motion in two trials (TRIALS_PER_ITEM = 2), the others one motion per trial."""
    per = getattr(protocol, "TRIALS_PER_ITEM", 1)
    return -(-trials // per)


def catch_count(config: dict) -> int:
    """Catch trials added to a participant's main trials: `catch_share` of them, rounded."""
    return int(round(config["catch_share"] * config["trials_per_participant"]))


def check_capacity(protocol, pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict):
    """Refuse (ConfigurationError with the numbers) a pool that cannot give every
    participant their trials under the clip rule: main trials, catch trials and practice
    each on clips of their own (practice feedback shows the answer, so practice never
    shows a clip of that participant's main or catch trials, repeats allowed or not)."""
    main = items_needed(protocol, config["trials_per_participant"])
    catch = catch_count(config)
    practice = items_needed(protocol, config["practice_trials"])
    per_clip = {}
    for item in pool:
        for clip in clips_of(item, samples):
            per_clip[clip] = per_clip.get(clip, 0) + 1
    clips = len(per_clip)
    parts = [f"{config['trials_per_participant']} trials per participant need {main}"]
    if catch:
        parts.append(f"{catch} catch trials {catch} more")
    if practice:
        parts.append(f"{config['practice_trials']} practice trials {practice} more")
    if not config["allow_clip_repeats"]:
        if clips < main + catch + practice:
            raise ConfigurationError(
                f"the stimulus pool holds {clips} distinct clips, " + ", ".join(parts)
                + (f" ({main + catch + practice} in all)" if len(parts) > 1 else "")
                + "; add samples, widen the filters or ask for fewer trials")
        return
    # Repeats allowed: practice still takes clips of its own; in the worst case it takes
    # the clips with the most items, and the rest must still hold every main/catch item.
    left = sum(sorted(per_clip.values(), reverse=True)[practice:])
    if clips < practice or left < main + catch:
        raise ConfigurationError(
            f"the stimulus pool holds {len(pool)} items over {clips} clips, {left} of them outside the "
            f"{practice} clips practice may take; " + ", ".join(parts) + " (items, repeats allowed)")


def other_label(sample: SampleInfo, rng: np.random.Generator) -> int:
    """A class of the sample's dataset other than its truth, at random: the obviously
    wrong second label of a deceitfulness catch trial (an unattacked motion)."""
    classes = [k for k in range(max(len(sample.class_names), 2)) if k != sample.label]
    return int(classes[rng.integers(len(classes))])


def class_name(sample: SampleInfo, label: int) -> str:
    return label_name(sample.class_names, label, PARTICIPANT_UNNAMED)


def shuffled(trials: list, rng: np.random.Generator) -> list:
    return [trials[i] for i in rng.permutation(len(trials))]


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


def draw_items(pool: list[PoolItem], samples: dict[int, SampleInfo], config: dict, rng: np.random.Generator,
               items: int, catch: int = 0) -> tuple[list[PoolItem], list[PoolItem]]:
    """(`items` pool items for the main trials, `catch` more for catch trials), least used
    first, each clip once unless `allow_clip_repeats`; which of them serve as catch
    trials is random, so catch clips are spread like the others."""
    chosen = least_used(pool, items + catch, rng, samples, distinct_clips=not config["allow_clip_repeats"])
    pick = rng.permutation(len(chosen))
    return [chosen[i] for i in sorted(pick[catch:])], [chosen[i] for i in sorted(pick[:catch])]


def analysable(frame):
    """The rows a protocol's statistics use: main trials, neither practice nor catch
    (catch trials only decide who is excluded, in studies.reports)."""
    keep = ~frame["is_practice"]
    if "condition" in frame:
        keep &= frame["condition"] != CATCH
    return frame[keep]


# What a protocol module may leave out, and what that then means; `studies.protocols.
# register` fills these in, so the generic code reads them without a fallback of its own.
OPTIONAL = {
    # Show the answer options only once the playback ended (deceitfulness: the labels
    # must not steer what is watched).
    "OPTIONS_AFTER_PLAYBACK": False,
    # The captions of the participant page's viewports: one caption per motion shown.
    "VIEW_LABELS": ["Left", "Right"],
    # Trials one pool item gives (naturalness: two), for the capacity check.
    "TRIALS_PER_ITEM": 1,
    # The (variant, side) handle a catch trial's broken motion is drawn from, a handle the
    # protocol's ordinary trials never use; None: its catch trials show no broken motion.
    "BROKEN_VIEW": None,
    # Whether the report carries the paper's Table 4 (attack success beside the share of
    # attacked motions judged unchanged): for 'changed / unchanged' protocols.
    "TABLE4": False,
    # Notes the codebook adds to a generic column's meaning: {file: {column: note}}.
    "COLUMN_NOTES": {},
    # The binary outcome `verdict_rows` gives each judged attacked motion, and its
    # meaning in the codebook of stimuli.csv.
    "VERDICT": "judged",
    "VERDICT_MEANING": "share of its judgements with the protocol's verdict",
}


def instructions_template(kind: str) -> str:
    """Where a protocol's instructions page lives unless it names another
    (`INSTRUCTIONS_TEMPLATE`): templates/participant/instructions/<kind>.html."""
    return f"participant/instructions/{kind}.html"


def trial_columns(design: dict, options: list[dict], answer) -> dict:
    """The protocol-dependent columns of a trial's row in trials.csv: `method` (the attack
    method of the attacked motion shown) and `chosen_name` (the chosen option's text,
    for protocols whose options are class labels). A protocol overrides this where its
    trials mean something else by them."""
    return {"method": design.get("right_method") or design.get("left_method"), "chosen_name": None}


def verdict_rows(trials):
    """No human verdict per motion (the default): an empty table of the shape that
    `studies.core.verdicts` joins. A protocol that has one returns one row per judged
    attacked motion: participant, sample, method and its VERDICT column (bool)."""
    import pandas as pd
    return pd.DataFrame({"participant": [], "sample": [], "method": [], OPTIONAL["VERDICT"]: []})
