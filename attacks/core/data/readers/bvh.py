"""BVH motion files (CMU and HDM05 exports, or any rig) as joint positions on a skeleton.

A BVH file stores a joint hierarchy (offsets, channel layout) and per-frame channel
values. This reader parses any channel order and count, runs forward kinematics on the
full rig, keeps the target skeleton's joints (by name or through the alias table in
`kinematics`), and converts to metres with y up. HDM05 cut-clip names give the label.

Conventions settled here:
- Rotation channels compose in the listed order (`Zrotation Yrotation Xrotation` is
  Rz @ Ry @ Rx), in degrees.
- The root's position channels are added to its OFFSET (the BVH definition); a non-root
  joint's position channels *replace* its OFFSET, which is what exporters that write six
  channels per joint mean by them.
- End sites become joints named `<parent>_end`, so a custom target skeleton can use them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attacks.core.skeletons import get_skeleton
from attacks.core.data.readers.base import RawClip, ReaderError, files_with_suffix
from attacks.core.data.readers.kinematics import (
    END_SITE_SUFFIX, UNIT_NAMES, Rig, check_body_height, clip_naming, euler_to_matrix,
    forward_kinematics, is_mocap_rig, match_joints, metres_per_unit, parse_numbers, rest_positions,
    vertical_axis, z_up_to_y_up,
)

_CHANNELS = {f"{a}{kind}": (kind, a.lower()) for a in "XYZ" for kind in ("position", "rotation")}


def list_files(path) -> list[Path]:
    """An .bvh file, or every .bvh file below a folder (recursive, sorted)."""
    return files_with_suffix(path, ".bvh")


def read_file(path, skeleton="cmu25", units=None, label=None, class_groups=None, up=None,
              fps=None, **options) -> list[RawClip]:
    """One clip: motion (1, T, V, 3) float32 in metres, y up, on `skeleton`.

    units: None (ASF units for CMU/HDM05-named rigs, else centimetres), a unit name
    ('asf', 'cm', 'mm', 'm', 'inch') or metres per unit. label: overrides the label
    taken from the file name. class_groups: path of the HDM05 class -> group table;
    when given, meta['group'] is set for known classes. up: 'y' or 'z' (default: judged
    from the rest pose). fps: overrides 1 / Frame Time.
    """
    path = Path(path)
    skeleton = get_skeleton(skeleton)
    parsed = parse_bvh(path)
    rig, channels, values = parsed.rig, parsed.channels, parsed.values

    scale = metres_per_unit(units, path, default=UNIT_NAMES["asf"] if is_mocap_rig(rig) else UNIT_NAMES["cm"])
    rest = rest_positions(rig)
    up_axis = (up or vertical_axis(rest)).lower()
    if up_axis not in ("y", "z"):
        raise ReaderError(path, f"up={up!r}: use 'y' or 'z'")
    axis = "xyz".index(up_axis)
    check_body_height(float(np.ptp(rest[:, axis])) * scale, path, line=rig.line,
                      units_note=f" at {scale:g} m per file unit")
    indices = match_joints(rig, skeleton, path)

    positions = forward_kinematics(rig.parents, *_pose(rig, channels, values)) * scale
    positions = positions[:, indices]
    if up_axis == "z":
        positions = z_up_to_y_up(positions)

    clip_label, meta, _ = clip_naming(path, label=label, class_groups=class_groups)
    meta.update({"metres_per_unit": scale, "rig_joints": rig.num_joints})
    return [RawClip(
        motion=positions[None].astype(np.float32),
        fps=float(fps) if fps is not None else _snap_fps(1.0 / parsed.frame_time),
        label=clip_label,
        source=path.name,
        frame_range=(0, positions.shape[0]),
        meta=meta,
    )]


class ParsedBVH:
    """The raw content of a BVH file: rig, channel layout and the (T, C) value table."""

    def __init__(self, rig: Rig, channels: list[tuple[int, str, str]], values: np.ndarray, frame_time: float):
        self.rig = rig
        self.channels = channels  # one (joint index, 'position'|'rotation', axis) per column
        self.values = values  # (T, C) float64
        self.frame_time = frame_time


def parse_bvh(path) -> ParsedBVH:
    """Parse a BVH file strictly; every problem is a ReaderError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ReaderError(path, f"cannot read ({e.strerror})") from None
    lines = text.splitlines()
    rig, channels, motion_at = _parse_hierarchy(path, lines)
    values, frame_time = _parse_motion(path, lines, motion_at, len(channels))
    return ParsedBVH(rig, channels, values, frame_time)


# ---- hierarchy -----------------------------------------------------------------------------
def _parse_hierarchy(path, lines):
    names, parents, offsets, end_site = [], [], [], []
    channels: list[tuple[int, str, str]] = []
    stack: list[int] = []  # open joints ('{' seen)
    pending = None  # joint declared, waiting for its '{'
    has_offset: set[int] = set()
    start = None
    for lineno, raw in enumerate(lines, start=1):
        tokens = raw.split()
        if not tokens:
            continue
        key = tokens[0]
        if start is None:
            if key.upper() != "HIERARCHY":
                raise ReaderError(path, f"expected 'HIERARCHY', found {raw.strip()[:40]!r} (not a BVH file?)", line=lineno)
            start = lineno
            continue
        if key == "MOTION":
            if pending is not None or stack or not names:
                raise ReaderError(path, "MOTION before the hierarchy is complete (unbalanced braces?)", line=lineno)
            missing = [names[j] for j in range(len(names)) if j not in has_offset]
            if missing:
                raise ReaderError(path, f"joint {missing[0]!r} has no OFFSET", line=start)
            rig = Rig(names=names, parents=np.asarray(parents, dtype=np.int64),
                      offsets=np.asarray(offsets, dtype=np.float64), end_site=np.asarray(end_site, dtype=bool),
                      line=start)
            return rig, channels, lineno
        if tokens[-1] == "{" and len(tokens) > 1:  # "JOINT name {" on one line
            tokens = tokens[:-1]
            opens = True
        else:
            opens = False
        if pending is not None and key != "{":
            raise ReaderError(path, f"expected '{{' after the declaration of {names[pending]!r}", line=lineno)
        if key in ("ROOT", "JOINT") or (key == "End" and tokens[1:2] == ["Site"]):
            if key == "ROOT" and (names or stack):
                raise ReaderError(path, "a second ROOT: only one skeleton per file is supported", line=lineno)
            if key != "ROOT" and not stack:
                raise ReaderError(path, f"{key} outside any joint", line=lineno)
            if key == "End":
                parent_name = names[stack[-1]]
                if end_site[stack[-1]]:
                    raise ReaderError(path, "End Site inside an End Site", line=lineno)
                name, is_end = f"{parent_name}{END_SITE_SUFFIX}", True
            else:
                name, is_end = " ".join(tokens[1:]), False
                if not name:
                    raise ReaderError(path, f"{key} without a name", line=lineno)
                if name in names:
                    raise ReaderError(path, f"joint name {name!r} appears twice", line=lineno)
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append((0.0, 0.0, 0.0))
            end_site.append(is_end)
            pending = len(names) - 1
            if opens:
                stack.append(pending)
                pending = None
        elif key == "{":
            if pending is None or len(tokens) != 1:
                raise ReaderError(path, "unexpected '{'", line=lineno)
            stack.append(pending)
            pending = None
        elif key == "}":
            if not stack or len(tokens) != 1:
                raise ReaderError(path, "unexpected '}'", line=lineno)
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                raise ReaderError(path, "OFFSET outside any joint", line=lineno)
            offsets[stack[-1]] = parse_numbers(path, tokens[1:], 3, "OFFSET", lineno)
            has_offset.add(stack[-1])
        elif key == "CHANNELS":
            if not stack or end_site[stack[-1]]:
                raise ReaderError(path, "CHANNELS outside a joint (End Sites have none)", line=lineno)
            joint = stack[-1]
            if any(j == joint for j, _, _ in channels):
                raise ReaderError(path, f"second CHANNELS line for joint {names[joint]!r}", line=lineno)
            try:
                count = int(tokens[1])
            except (IndexError, ValueError):
                raise ReaderError(path, "CHANNELS needs a count", line=lineno) from None
            listed = tokens[2:]
            if count != len(listed):
                raise ReaderError(path, f"CHANNELS declares {count} channels but lists {len(listed)}", line=lineno)
            for ch in listed:
                if ch not in _CHANNELS:
                    raise ReaderError(path, f"unknown channel {ch!r} (expected X/Y/Z position/rotation)", line=lineno)
                channels.append((joint, *_CHANNELS[ch]))
        else:
            raise ReaderError(path, f"unexpected {raw.strip()[:40]!r} in the hierarchy", line=lineno)
    if start is None:
        raise ReaderError(path, "empty file (no HIERARCHY)")
    raise ReaderError(path, "file ends inside the hierarchy: no MOTION section (truncated?)", line=len(lines))


# ---- motion ---------------------------------------------------------------------------------
def _parse_motion(path, lines, motion_at, num_channels):
    header = [(n, lines[n - 1].strip()) for n in range(motion_at + 1, len(lines) + 1) if lines[n - 1].strip()]
    if len(header) < 2:
        raise ReaderError(path, "MOTION section lacks 'Frames:' and 'Frame Time:' (truncated?)", line=len(lines))
    (frames_line, frames_text), (time_line, time_text) = header[:2]
    num_frames = _header_value(path, frames_text, "Frames:", frames_line, int)
    frame_time = _header_value(path, time_text, "Frame Time:", time_line, float)
    if num_frames <= 0:
        raise ReaderError(path, f"Frames: {num_frames}: the file holds no motion", line=frames_line)
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise ReaderError(path, f"Frame Time: {frame_time} is not a positive duration", line=time_line)
    if num_channels == 0:
        raise ReaderError(path, "the hierarchy declares no CHANNELS")

    body = header[2:]
    if len(body) < num_frames:
        last = body[-1][0] if body else time_line
        raise ReaderError(path, f"'Frames: {num_frames}' but only {len(body)} rows of motion (truncated?)", line=last)
    if len(body) > num_frames:
        raise ReaderError(path, f"more motion rows than 'Frames: {num_frames}' declares", line=body[num_frames][0])
    rows = [text.split() for _, text in body]
    for (lineno, _), row in zip(body, rows):
        if len(row) != num_channels:
            raise ReaderError(path, f"row has {len(row)} values, the hierarchy declares {num_channels} channels",
                              line=lineno)
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        for (lineno, text), row in zip(body, rows):
            try:
                np.array(row, dtype=np.float64)
            except ValueError:
                raise ReaderError(path, f"motion row holds a value that is not a number: {text[:40]!r}...",
                                  line=lineno) from None
        raise  # pragma: no cover - every row parsed on its own
    bad = ~np.isfinite(values)
    if bad.any():
        raise ReaderError(path, "non-finite value in the motion", line=body[int(np.argwhere(bad)[0, 0])][0])
    return values, frame_time


def _header_value(path, text, key, lineno, kind):
    if not text.startswith(key):
        raise ReaderError(path, f"expected '{key} <value>', found {text[:40]!r}", line=lineno)
    try:
        return kind(text[len(key):].strip())
    except ValueError:
        raise ReaderError(path, f"'{key}' value {text[len(key):].strip()!r} is not a number", line=lineno) from None


# ---- pose ------------------------------------------------------------------------------------
def _pose(rig: Rig, channels, values):
    """(offsets (T, J, 3), local rotations (T, J, 3, 3), root translation (T, 3)) from channels."""
    num_frames = values.shape[0]
    offsets = np.broadcast_to(rig.offsets, (num_frames, rig.num_joints, 3)).copy()
    rotations = np.broadcast_to(np.eye(3), (num_frames, rig.num_joints, 3, 3)).copy()
    root_translation = np.zeros((num_frames, 3))
    by_joint: dict[int, list[tuple[int, str, str]]] = {}
    for col, (joint, kind, axis) in enumerate(channels):
        by_joint.setdefault(joint, []).append((col, kind, axis))
    for joint, chans in by_joint.items():
        rot = [(c, a) for c, k, a in chans if k == "rotation"]
        if rot:
            cols, axes = zip(*rot)
            rotations[:, joint] = euler_to_matrix(values[:, list(cols)], "".join(axes))
        for col, kind, axis in chans:
            if kind != "position":
                continue
            k = "xyz".index(axis)
            if rig.parents[joint] < 0:
                root_translation[:, k] = values[:, col]
            else:
                offsets[:, joint, k] = values[:, col]
    return offsets, rotations, root_translation


def _snap_fps(fps: float) -> float:
    """1 / Frame Time, rounded to a whole rate when the file's printed precision blurs it."""
    nearest = round(fps)
    return float(nearest) if nearest > 0 and abs(fps - nearest) <= 1e-3 * fps else fps
