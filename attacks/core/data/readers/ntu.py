"""NTU RGB+D (60 and 120) native `.skeleton` text files.

The format is a flat stream of counts and records: line 1 holds the frame count; each
frame starts with a body count; each body is one line of 10 body fields (the Kinect
tracking id first), a joint-count line, and one line per joint of 12 numbers
(x y z in metres, depth x y, colour x y, orientation w x y z, tracking state).
Coordinates are camera coordinates with y up, so they are kept as they are.

Kinect assigns bodies to a frame in no fixed order, so bodies are followed by tracking
id, not by their slot in the frame. Like the 2s-AGCN preparation of NTU, the reader
keeps the `max_persons` most active bodies, activity being the summed per-axis standard
deviation of a body's joint positions over the frames where it is present; a spurious
detection (a chair, a passer-by glimpsed for a few frames) scores low and is dropped.
Frames without a body stay in the clip as zeros, so frame indices match the video.

Everything about a take is in its name, `SsssCcccPpppRrrrAaaa`: setup, camera,
performer, replication and the 1-based action class.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from attacks.core.data.readers.base import RawClip, ReaderError

FPS = 30.0
NUM_JOINTS = 25  # Kinect v2
JOINT_FIELDS = 12
BODY_FIELDS = 10
_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")


def list_files(path) -> list[Path]:
    """A folder (every *.skeleton below it, sorted), one .skeleton file, or a text list of paths.

    In a list, blank lines and lines starting with `#` are skipped and relative paths
    are resolved against the list's own folder, so a list can travel with its data.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(root.rglob("*.skeleton"))
        if not files:
            raise ReaderError(root, "no *.skeleton files found in this folder")
        return files
    if not root.is_file():
        raise ReaderError(root, "not a file or folder")
    if root.suffix.lower() == ".skeleton":
        return [root]
    return _read_file_list(root)


def read_file(path, skeleton, max_persons: int = 2, **options) -> list[RawClip]:
    """One clip per file: motion (M, T, 25, 3) with 1 <= M <= max_persons.

    The kept bodies are ordered by activity, most active first; `person_indices` gives
    each one's index in order of first appearance in the file. A take in which no body
    is ever detected yields a single all-zero person and empty `person_indices`.
    """
    path = Path(path)
    if skeleton.num_joints != NUM_JOINTS:
        raise ReaderError(path, f"NTU RGB+D has {NUM_JOINTS} Kinect v2 joints; "
                                f"skeleton {skeleton.name!r} has {skeleton.num_joints}")
    try:
        max_persons = int(max_persons)
    except (TypeError, ValueError):
        raise ReaderError(path, f"max_persons must be an integer, got {max_persons!r}") from None
    if max_persons < 1:
        raise ReaderError(path, f"max_persons must be at least 1, got {max_persons}")
    meta = parse_name(path)

    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as e:
        raise ReaderError(path, f"not a text file ({e.reason} at byte {e.start})") from None
    num_frames, records = _parse_structure(path, lines)
    xyz = _parse_joints(path, lines, records.joint_starts)

    motion, present, keys = _track_bodies(num_frames, records, xyz)  # (B, T, V, 3), (B, T)
    energy = _activity(motion, present)
    kept = np.argsort(-energy, kind="stable")[:max_persons]
    if len(kept):
        out = motion[kept]
    else:
        out = np.zeros((1, num_frames, NUM_JOINTS, 3), dtype=np.float32)

    meta.update(
        num_bodies=int(motion.shape[0]),
        tracking_ids=[keys[k][0] for k in kept.tolist()],
        frames_without_body=int((~present.any(axis=0)).sum()) if len(present) else num_frames,
    )
    return [RawClip(
        motion=out,
        fps=FPS,
        label=f"A{meta['class_id'] + 1:03d}",
        source=path.name,
        frame_range=(0, num_frames),
        person_indices=tuple(int(k) for k in kept),
        meta=meta,
    )]


def parse_name(path) -> dict:
    """Setup, camera, performer, replication and 0-based class id from an NTU file name."""
    path = Path(path)
    stem = path.name[: -len(".skeleton")] if path.name.lower().endswith(".skeleton") else path.stem
    m = _NAME.match(stem)
    if not m:
        raise ReaderError(path, "file name is not an NTU take name SsssCcccPpppRrrrAaaa(.skeleton)")
    setup, camera, performer, replication, action = (int(g) for g in m.groups())
    if action < 1:
        raise ReaderError(path, f"action A{action:03d} in the file name: NTU classes start at A001")
    return {
        "setup": setup,
        "camera": camera,
        "performer": performer,
        "subject": performer,  # the generic key other readers use for cross-subject splits
        "replication": replication,
        "class_id": action - 1,
    }


# ---- parsing ---------------------------------------------------------------------

class _Records:
    """Where each body record sits: its frame, its tracking key and its first joint line."""

    def __init__(self):
        self.frames: list[int] = []
        self.body_keys: list[tuple[str, int]] = []  # (tracking id, repeat of that id in the frame)
        self.joint_starts: list[int] = []  # 0-based line index of the body's first joint


def _parse_structure(path, lines) -> tuple[int, _Records]:
    """Walk the counts and body lines; joint lines are only located here, parsed in bulk later."""
    n_lines = len(lines)
    if n_lines == 0 or not any(l.strip() for l in lines):
        raise ReaderError(path, "empty file")
    records = _Records()

    def count_at(i, what):
        if i >= n_lines:
            raise ReaderError(path, f"file ends before the {what} (truncated?)", line=n_lines)
        parts = lines[i].split()
        if len(parts) != 1:
            raise ReaderError(path, f"expected the {what} as one integer, found {lines[i].strip()!r}", line=i + 1)
        try:
            value = int(parts[0])
        except ValueError:
            raise ReaderError(path, f"the {what} {parts[0]!r} is not an integer", line=i + 1) from None
        if value < 0:
            raise ReaderError(path, f"the {what} is negative ({value})", line=i + 1)
        return value

    num_frames = count_at(0, "frame count")
    if num_frames == 0:
        raise ReaderError(path, "the file declares 0 frames", line=1)
    i = 1
    for t in range(num_frames):
        where = f"frame {t + 1} of {num_frames}"
        num_bodies = count_at(i, f"body count of {where}")
        i += 1
        seen: dict[str, int] = {}
        for b in range(num_bodies):
            if i >= n_lines:
                raise ReaderError(path, f"file ends before body {b + 1} of {where} (truncated?)", line=n_lines)
            tracking_id = _body_line(path, lines[i], i + 1)
            i += 1
            joints = count_at(i, f"joint count of body {b + 1} in {where}")
            if joints != NUM_JOINTS:
                raise ReaderError(path, f"body {b + 1} in {where} declares {joints} joints; "
                                        f"Kinect v2 skeletons have {NUM_JOINTS}", line=i + 1)
            i += 1
            if i + joints > n_lines:
                # A cut in the middle of a joint line is the likelier fault: name that line.
                for k in range(i, n_lines):
                    if len(lines[k].split()) != JOINT_FIELDS:
                        _raise_joint_line(path, lines[k], k + 1)
                raise ReaderError(path, f"file ends inside the joints of body {b + 1} in {where} "
                                        f"({n_lines - i} of {joints} joint lines; truncated?)", line=n_lines)
            # A missing or extra joint line shifts everything after it; checking the block's
            # ends here names the line where the shift starts, not a later count line.
            for k in (i, i + joints - 1):
                if len(lines[k].split()) != JOINT_FIELDS:
                    _raise_joint_line(path, lines[k], k + 1)
            records.frames.append(t)
            records.body_keys.append((tracking_id, seen.get(tracking_id, 0)))
            seen[tracking_id] = seen.get(tracking_id, 0) + 1
            records.joint_starts.append(i)
            i += joints
    for k in range(i, n_lines):
        if lines[k].strip():
            raise ReaderError(path, f"unexpected content after the last of {num_frames} frames", line=k + 1)
    return num_frames, records


def _body_line(path, line, lineno) -> str:
    parts = line.split()
    if len(parts) != BODY_FIELDS:
        raise ReaderError(path, f"expected a body line of {BODY_FIELDS} fields (tracking id first), "
                                f"found {len(parts)}", line=lineno)
    if not parts[0].isdigit():
        raise ReaderError(path, f"tracking id {parts[0]!r} is not a non-negative integer", line=lineno)
    for value in parts[1:]:
        try:
            float(value)
        except ValueError:
            raise ReaderError(path, f"body field {value!r} is not a number", line=lineno) from None
    return parts[0]


def _parse_joints(path, lines, starts) -> np.ndarray:
    """All joint lines at once -> (bodies, 25, 3); on any fault, find and name the line."""
    if not starts:
        return np.zeros((0, NUM_JOINTS, 3), dtype=np.float32)
    text = " ".join(" ".join(lines[s:s + NUM_JOINTS]) for s in starts)
    tokens = text.split()
    values = None
    if len(tokens) == len(starts) * NUM_JOINTS * JOINT_FIELDS:
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            values = None
    if values is None or not np.isfinite(values).all():
        for s in starts:
            for k in range(s, s + NUM_JOINTS):
                _check_joint_line(path, lines[k], k + 1)
        raise ReaderError(path, "malformed joint lines")  # unreachable unless the checks disagree
    joints = values.reshape(len(starts), NUM_JOINTS, JOINT_FIELDS)
    return joints[..., :3].astype(np.float32)


def _check_joint_line(path, line, lineno):
    parts = line.split()
    if len(parts) != JOINT_FIELDS:
        _raise_joint_line(path, line, lineno)
    try:
        values = [float(v) for v in parts]
    except ValueError:
        _raise_joint_line(path, line, lineno)
    if not np.isfinite(values).all():
        raise ReaderError(path, f"non-finite value in joint line {line.strip()!r}", line=lineno)


def _raise_joint_line(path, line, lineno):
    parts = line.split()
    if len(parts) != JOINT_FIELDS:
        raise ReaderError(path, f"expected a joint line of {JOINT_FIELDS} numbers, found {len(parts)} fields "
                                f"(truncated or wrong joint count?)", line=lineno)
    bad = next(v for v in parts if not _is_number(v))
    raise ReaderError(path, f"joint field {bad!r} is not a number", line=lineno)


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_file_list(list_path: Path) -> list[Path]:
    try:
        entries = list_path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError:
        raise ReaderError(list_path, "neither a .skeleton file nor a text list of .skeleton paths") from None
    files = []
    for lineno, entry in enumerate(entries, start=1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        f = Path(entry)
        if not f.is_absolute():
            f = list_path.parent / f
        if not f.is_file():
            raise ReaderError(list_path, f"listed file {entry!r} does not exist", line=lineno)
        files.append(f)
    if not files:
        raise ReaderError(list_path, "the file list names no files")
    return files


# ---- bodies ------------------------------------------------------------------------

def _track_bodies(num_frames, records: _Records, xyz):
    """Scatter body records into (B, T, 25, 3) by tracking id, B in order of first appearance.

    Returns the motion, the (B, T) presence mask and each body's (tracking id, repeat) key.
    """
    index: dict[tuple[str, int], int] = {}
    body_of_record = np.array([index.setdefault(k, len(index)) for k in records.body_keys], dtype=np.int64)
    frames = np.asarray(records.frames, dtype=np.int64)
    motion = np.zeros((len(index), num_frames, NUM_JOINTS, 3), dtype=np.float32)
    present = np.zeros((len(index), num_frames), dtype=bool)
    motion[body_of_record, frames] = xyz
    present[body_of_record, frames] = True
    return motion, present, list(index)


def _activity(motion, present) -> np.ndarray:
    """Summed per-axis std of joint positions over the frames where each body is present."""
    if motion.shape[0] == 0:
        return np.zeros(0)
    w = present[:, :, None, None].astype(np.float64)  # (B, T, 1, 1)
    n = w.sum(axis=(1, 2, 3)) * motion.shape[2]  # samples per body: frames x joints
    pos = motion.astype(np.float64)
    mean = (pos * w).sum(axis=(1, 2)) / n[:, None]  # (B, 3)
    var = (((pos - mean[:, None, None, :]) ** 2) * w).sum(axis=(1, 2)) / n[:, None]
    return np.sqrt(var).sum(axis=1)
