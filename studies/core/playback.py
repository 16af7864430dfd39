"""How long and how often a trial's motion plays: natural speed, whole repeats, a still
pause between them.

Why: what participants judge (jitter, accelerations, bone wobble) lives in time, so a
motion must play at the frame rate it was captured at. A study's `playback_seconds`
is a viewing budget, not a duration to stretch the clip to: the clip repeats the whole
number of times that comes nearest the budget (at least once, never cut short), with a still pause
on its last frame between repeats so the restart is visible as a restart rather than a
jump. Slow motion plays the same repeats three times slower (the paper's "3x slower"),
so the real-time and slow conditions show the same content; the pauses stay as set.

The plan is decided on the server (stored on the trial, sent to the browser, used to
flag answers that arrive before the playback could have ended); the browser player
follows it and logs what it actually drew.
"""
from __future__ import annotations

import math

# Seconds of still last frame between two showings of the clip (configurable per study).
DEFAULT_PAUSE_SECONDS = 0.5


def clip_seconds(frames: int, fps: float) -> float:
    """Natural duration from the first to the last frame; a single frame lasts one frame."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(frames - 1, 1) / fps


def plan(motions: list[tuple[int, float]], config: dict) -> dict:
    """The playback schedule of a trial showing `motions` (frames, fps) side by side.

    Side-by-side motions share one clock: each plays at its own fps and holds its last
    frame until the longest one ends. Returns the fields the player and the exports use;
    durations in seconds.
    """
    if not motions:
        raise ValueError("a trial shows at least one motion")
    clip = max(clip_seconds(frames, fps) for frames, fps in motions)
    pause = float(config.get("repeat_pause_seconds", DEFAULT_PAUSE_SECONDS))
    slow = config["slow_motion"]
    budget = config["playback_seconds"] * config["repeats"]
    # The number of whole showings (pauses between them, none after the last) whose total
    # comes nearest the budget: within half a showing of it, either side.
    showings = max(1, math.floor((budget + pause) / (clip + pause) + 0.5))
    total = showings * clip * slow + (showings - 1) * pause
    return {
        "fps": [float(fps) for _, fps in motions],
        "frames": [int(frames) for frames, _ in motions],
        "effective_fps": [float(fps) / slow for _, fps in motions],
        "clip_seconds": round(clip, 6),
        "showings": showings,
        "pause_seconds": pause,
        "slow_motion": slow,
        "total_seconds": round(total, 6),
        # The study's settings, kept beside what they produced.
        "seconds": config["playback_seconds"],
        "repeats": config["repeats"],
    }
