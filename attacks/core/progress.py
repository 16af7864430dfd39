"""Progress of long work: a tqdm bar on a terminal, plain log lines anywhere else.

A bar redraws itself in place on a terminal; written to a log file every redraw is a new
line, so a demo's log held thousands of them. `steps` wraps an iterable: on a terminal
(standard error is a tty) it is a tqdm bar; otherwise it writes one line per step, or at
most one per `min_interval` seconds and always the last, e.g.

    smart/ab: batch 3/10 (12.4 s, 4.1 s/batch) loss=0.512

`log_steps=False` keeps inner loops (a training epoch's batches) silent off a terminal:
their epoch writes one line through `note`. Lines go to the ``attacks.progress`` logger
when logging is configured (Django's settings configure it, as JSON on stdout), else to
standard error.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterable

from tqdm.auto import tqdm

logger = logging.getLogger("attacks.progress")


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def steps(iterable: Iterable, desc: str, unit: str = "step", *, enabled: bool = True, total: int | None = None,
          min_interval: float = 0.0, leave: bool = True, log_steps: bool = True, terminal: bool | None = None):
    """Iterate `iterable`, showing progress (see the module docstring). The result has
    tqdm's `set_postfix(**values)`; `terminal` overrides the tty check (tests)."""
    terminal = is_terminal() if terminal is None else terminal
    if terminal or not enabled or not log_steps:
        return tqdm(iterable, desc=desc, unit=unit, total=total, leave=leave, disable=not (enabled and terminal))
    return LoggedSteps(iterable, desc, unit, total=total, min_interval=min_interval)


def note(message: str, *, terminal: bool | None = None) -> None:
    """One line of progress (an epoch's summary) that does not break a bar on a terminal."""
    if is_terminal() if terminal is None else terminal:
        tqdm.write(message)
    else:
        emit(message)


def emit(message: str) -> None:
    if logging.getLogger().hasHandlers() or logger.handlers:
        logger.info(message)
    else:
        print(message, file=sys.stderr, flush=True)


class LoggedSteps:
    """An iterable that writes a line per step (throttled by `min_interval` seconds)."""

    def __init__(self, iterable, desc, unit, total=None, min_interval=0.0):
        self.iterable, self.desc, self.unit, self.min_interval = iterable, desc, unit, min_interval
        try:
            self.total = len(iterable) if total is None else total
        except TypeError:
            self.total = None
        self.postfix = {}

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def __iter__(self):
        started = last = time.perf_counter()
        done = 0
        for item in self.iterable:
            yield item
            done += 1
            now = time.perf_counter()
            if now - last >= self.min_interval or done == self.total:
                emit(self.line(done, now - started))
                last = now

    def line(self, done: int, elapsed: float) -> str:
        count = f"{done}/{self.total}" if self.total is not None else str(done)
        extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {self.unit} {count} ({elapsed:.1f} s, {elapsed / done:.2f} s/{self.unit}){extra}"
