"""What every reader returns and how it fails.

Readers turn files into `RawClip`s: float32 motions of shape (M, T, V, 3) in metres,
y up, on a known skeleton. They never touch the database; the import command wraps
them in one transaction, so a `ReaderError` leaves the database as it was.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attacks.core.errors import InputError


class ReaderError(InputError):
    """A file cannot be read; the message names the file and, where known, the line."""

    def __init__(self, path, message, line=None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass
class RawClip:
    motion: np.ndarray  # (M, T, V, 3) float32, metres, y up
    fps: float
    label: str  # class name as the dataset spells it
    source: str  # file the clip came from
    frame_range: tuple[int, int] = (0, 0)  # [start, stop) in the source file's frames
    person_indices: tuple[int, ...] = (0,)  # which bodies of the source were kept
    meta: dict = field(default_factory=dict)  # performer, camera, setup, subject, ...

    def __post_init__(self):
        self.motion = np.asarray(self.motion, dtype=np.float32)
        if self.motion.ndim != 4 or self.motion.shape[-1] != 3:
            raise ValueError(f"{self.source}: motion must be (M, T, V, 3), got {self.motion.shape}")
        if self.frame_range == (0, 0):
            self.frame_range = (0, self.motion.shape[1])

    @property
    def num_frames(self) -> int:
        return self.motion.shape[1]

    @property
    def num_persons(self) -> int:
        return self.motion.shape[0]


def files_with_suffix(path, suffix: str) -> list[Path]:
    """A file itself, or every file with `suffix` below a folder (recursive, sorted)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ReaderError(root, "not a file or folder")
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() == suffix)
    if not files:
        raise ReaderError(root, f"no {suffix} files found below this folder")
    return files
