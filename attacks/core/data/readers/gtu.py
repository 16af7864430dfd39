"""GTU3DActions: one folder per class (1..14), `movementN.txt` files of `x y z` lines.

Each frame is 25 consecutive lines in the Kinect v2 / NTU joint order, in metres and
camera coordinates with y up, recorded at 30 fps. Subjects are not encoded in the files.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from attacks.core.data.readers.base import RawClip, ReaderError

FPS = 30.0
CLASS_NAMES = {
    1: "opening and closing the arms",
    2: "right-handed shaking",
    3: "right and left waist stretch",
    4: "walking",
    5: "bend the leg left or right (a)",
    6: "bend the leg left or right (b)",
    7: "left-handed shaking",
    8: "one right-left step",
    9: "crouching",
    10: "standing on the sandal",
    11: "sit and applause",
    12: "lower back",
    13: "right and left 8-step motion",
    14: "neck relaxation",
}
_MOVEMENT = re.compile(r"movement(\d+)\.txt$", re.IGNORECASE)


def list_files(path) -> list[Path]:
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ReaderError(root, "not a file or folder")
    files = [
        f for d in root.iterdir() if d.is_dir() and d.name.isdigit()
        for f in d.iterdir() if _MOVEMENT.search(f.name)
    ]
    if not files:
        raise ReaderError(root, "no <class id>/movementN.txt files found (is this the GTU3DActions folder?)")
    # Numeric order of class, then take: stable across file systems.
    return sorted(files, key=lambda f: (int(f.parent.name), int(_MOVEMENT.search(f.name).group(1))))


def read_file(path, skeleton, **options) -> list[RawClip]:
    path = Path(path)
    if skeleton.num_joints != 25:
        raise ReaderError(path, f"GTU3DActions has 25 Kinect v2 joints; skeleton {skeleton.name!r} has {skeleton.num_joints}")
    if not path.parent.name.isdigit() or int(path.parent.name) not in CLASS_NAMES:
        raise ReaderError(path, f"parent folder {path.parent.name!r} is not a class id 1..14")
    class_id = int(path.parent.name)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise ReaderError(path, f"cannot read as text ({e})") from None
    try:
        # Fast path: numpy's C parser, which refuses ragged rows; anything odd is re-read
        # line by line below to say where the file is broken.
        values = np.loadtxt(io.StringIO(text), dtype=np.float32, ndmin=2)
        if values.shape[1] != 3:
            raise ValueError
        values = values.reshape(-1)
    except ValueError:
        values = _parse_lines(path)
    rows = values.reshape(-1, 3)
    if not len(rows):
        raise ReaderError(path, "file holds no joints")
    if len(rows) % 25:
        raise ReaderError(path, f"{len(rows)} joint lines is not a whole number of 25-joint frames (truncated?)",
                          line=len(rows))
    coords = rows.reshape(-1, 25, 3)
    if not np.isfinite(coords).all():
        raise ReaderError(path, "non-finite coordinates")
    take = int(_MOVEMENT.search(path.name).group(1))
    return [RawClip(
        motion=coords[None],
        fps=FPS,
        label=CLASS_NAMES[class_id],
        source=f"{path.parent.name}/{path.name}",
        meta={"class_id": class_id, "take": take},
    )]


def _parse_lines(path) -> np.ndarray:
    """The slow parse, line by line, that can say where a file is broken."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ReaderError(path, f"expected 3 numbers 'x y z', found {len(parts)} fields", line=lineno)
            try:
                rows.append([float(v) for v in parts])
            except ValueError:
                raise ReaderError(path, f"not a number in {line.strip()!r}", line=lineno) from None
    return np.asarray(rows, dtype=np.float32).reshape(-1)
