"""Import protocols (raw, SMART windows, 2s-AGCN normalisation) and fixed-length batching.

Recognizers in the literature are trained on normalised motions, and each dataset has its
own recipe; applying the right one at import time keeps stored clips comparable with the
papers. Every rigid transform a protocol applies is stored in the clip's
``meta["world"]`` so that `to_world` can put an (adversarial) motion back into world
units for display.

Conventions shared by all protocols (y up, metres, right-handed):

* "facing +z": the body's forward direction, ``up x (right - left)``, points along +z,
  so the left hip/shoulder sits on the +x side (``left - right`` points along +x). A
  default three.js camera looks down -z, so normalised bodies face the viewer.
* ``meta["world"]`` = ``{"protocol", "translation", "rotation", ...}`` with
  ``normalised = rotation @ (world - translation)``; ``translation`` is one point (3,)
  or one point per frame (T, 3), ``rotation`` a 3x3 nested list.
* A person whose motion is entirely zero is "absent" (padding) and stays zero under
  every transform and its inverse.

Protocols
---------
``raw``
    Motions unchanged (metres, source frame rate, source length).

``smart`` (HDM05/MHAD as the SMART work prepared them)
    Optional linear resampling to ``fps=`` (default: keep the source rate), then windows
    of ``window=60`` frames every ``stride=30`` frames (windows that would run past the
    end are not made: a 100-frame clip gives windows at 0 and 30). Each window is
    translated so that the centre joint (``skeleton.center_joint``) of the first person
    in the window's first frame is at the origin -- a single translation per window, so
    global movement within the window (walking, jumping) is kept -- and rotated about y
    so that the body faces +z in that frame (lateral axis from ``skeleton.hips``,
    ``skeleton.shoulders`` when hips are missing or degenerate, projected onto xz).
    A clip shorter than one window is by default kept as one window padded by repeating
    its last frame (``short="pad"``; GTU3DActions has clips of 16 frames and dropping
    them would drop real samples); ``short="drop"`` drops it. Both are counted in stats.

``ntu`` (the 2s-AGCN ``pre_normalization`` of NTU RGB+D, adapted to y up)
    Two persons (``persons=2``; a missing second body is all zero), null frames (a body
    all zero) removed and the body's frames repeated cyclically to ``frames=300``
    (clips longer than that are truncated; NTU clips never are). The centre joint of
    the first person is subtracted *per frame* from every present person, as 2s-AGCN
    does (this removes global translation; the per-frame translation is stored). Then
    one rotation, from the first person's first frame: the bone ``spine[0] -> spine[1]``
    (spine base -> spine mid on ntu25) is rotated onto +y by the minimal rotation, and
    the body is turned about y so that the shoulder line (``left - right``) projects
    onto +x. 2s-AGCN instead maps the spine onto +z (their up) and ``right - left``
    onto +x with a second minimal rotation; our target frame is the same up to a fixed
    proper rotation (theirs is z up, ours y up and facing +z, as after ``smart``), and
    turning about the vertical keeps the spine exactly vertical and stays well defined
    when the body must turn by 180 degrees (Kinect subjects face -z).
"""
from __future__ import annotations

import copy

import numpy as np

from attacks.core.data.readers.base import RawClip
from attacks.core.data.readers.kinematics import axis_rotation

PROTOCOLS = ("raw", "smart", "ntu")


# ---- public API ----------------------------------------------------------------------

def apply_protocol(clips: list[RawClip], protocol: str, skeleton, **options) -> tuple[list[RawClip], dict]:
    """Apply an import protocol to reader output; returns (clips, dataset-level stats)."""
    check_protocol(protocol)
    if protocol == "raw":
        if options:
            raise ValueError(f"protocol 'raw' takes no options, got {sorted(options)}")
        return list(clips), {}
    if protocol == "smart":
        return _smart(clips, skeleton, **options)
    return _ntu(clips, skeleton, **options)


def check_protocol(protocol: str) -> None:
    """Refuse a protocol name that is not one of `PROTOCOLS`, listing the ones there are."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")


def to_world(motion: np.ndarray, world_meta: dict | None, crop: bool = True) -> np.ndarray:
    """Undo a protocol's rigid transform: (M, T, V, 3) normalised -> world units.

    With ``crop`` the padding a protocol added is cut off again (the ``ntu`` protocol
    records how many frames and persons the source had), so for a clip without null
    frames ``to_world(apply(x)) == x`` up to float rounding. ``None`` means no transform.
    """
    motion = np.asarray(motion, dtype=np.float32)
    if not world_meta:
        return motion.copy()
    rotation = np.asarray(world_meta["rotation"], dtype=np.float64)
    translation = np.asarray(world_meta["translation"], dtype=np.float64)
    if translation.ndim == 2:  # one point per frame; frames beyond it reuse the last
        index = np.minimum(np.arange(motion.shape[1]), len(translation) - 1)
        translation = translation[index][None, :, None, :]
    present = _present_persons(motion)
    world = np.einsum("ij,mtvi->mtvj", rotation, motion.astype(np.float64)) + translation
    world = np.where(present[:, None, None, None], world, 0.0).astype(np.float32)
    if crop:
        world = world[: world_meta.get("persons", world.shape[0]), : world_meta.get("frames", world.shape[1])]
    return world


def resample(motion: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear interpolation over time, (M, T, V, 3) -> (M, num_frames, V, 3).

    The first and last frames are kept exactly; a one-frame motion is repeated.
    """
    motion = np.asarray(motion)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    positions = np.linspace(0.0, motion.shape[1] - 1, num_frames)
    return _interpolate(motion, positions)


def to_fixed_length(motions: list[np.ndarray], num_frames: int, num_persons: int) -> np.ndarray:
    """Batch variable-length clips: each (M_i, T_i, V, 3) -> (N, num_persons, num_frames, V, 3).

    Each clip is linearly resampled to ``num_frames`` (first and last frames kept) and its
    persons truncated or zero-padded to ``num_persons``. One gather for the whole batch.
    """
    if not motions:
        raise ValueError("to_fixed_length needs at least one motion")
    fixed = [_fix_persons(np.asarray(m, dtype=np.float32), num_persons) for m in motions]
    lengths = np.array([m.shape[1] for m in fixed])
    if (lengths < 1).any():
        raise ValueError("a motion has no frames")
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    stacked = np.concatenate(fixed, axis=1)  # (P, sum T, V, 3)
    unit = np.linspace(0.0, 1.0, num_frames)
    # Positions and weights within each clip, offsets added to the integer frames only: a
    # clip comes out bit-identical whichever clips it is batched with (streamed chunks).
    local = unit[None, :] * (lengths[:, None] - 1)  # (N, F)
    lower = np.floor(local).astype(np.int64)
    upper = np.minimum(lower + 1, lengths[:, None] - 1)
    weight = (local - lower).astype(np.float32).reshape(-1)[None, :, None, None]
    a = stacked[:, (offsets[:, None] + lower).reshape(-1)]
    b = stacked[:, (offsets[:, None] + upper).reshape(-1)]
    flat = a * (1 - weight) + b * weight
    out = flat.reshape(num_persons, len(motions), num_frames, *flat.shape[2:])
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3, 4)).astype(np.float32)


def centre_and_face(motion: np.ndarray, skeleton) -> tuple[np.ndarray, dict]:
    """Centre joint of person 0, frame 0 at the origin; body facing +z in frame 0.

    Returns the normalised motion and its ``world`` meta (for `to_world`).
    """
    motion = np.asarray(motion, dtype=np.float32)
    centre, rotation, angle = _centre_and_yaw(motion[None, :, :1], skeleton)
    normalised = _rigid(motion[None], centre, rotation)[0]
    return normalised, _smart_world(centre[0], rotation[0], angle[0])


def normalise_for_recognition(motion: np.ndarray, skeleton) -> np.ndarray:
    """The normalisation training applies to raw-imported clips (see `centre_and_face`)."""
    return centre_and_face(motion, skeleton)[0]


# ---- smart ---------------------------------------------------------------------------

def _smart(clips, skeleton, window=60, stride=30, fps=None, short="pad"):
    window, stride = int(window), int(stride)
    if window < 1 or stride < 1:
        raise ValueError(f"smart protocol: window and stride must be >= 1, got {window}, {stride}")
    if short not in ("pad", "drop"):
        raise ValueError(f"smart protocol: short must be 'pad' or 'drop', got {short!r}")
    out, padded, dropped = [], 0, 0
    for clip in clips:
        motion, ratio = clip.motion, 1.0
        target_fps = clip.fps
        if fps is not None and float(fps) != clip.fps:
            target_fps = float(fps)
            ratio = clip.fps / target_fps  # source frames per output frame
            last = int(np.floor((clip.num_frames - 1) / ratio + 1e-9))
            motion = _interpolate(motion, np.arange(last + 1) * ratio)
        length = motion.shape[1]
        if length < window:
            if short == "drop":
                dropped += 1
                continue
            padded += 1
            starts = np.array([0])
            index = np.minimum(np.arange(window), length - 1)[None]
        else:
            starts = np.arange(0, length - window + 1, stride)
            index = starts[:, None] + np.arange(window)[None]
        windows = motion[:, index].transpose(1, 0, 2, 3, 4)  # (W, M, window, V, 3)
        centre, rotation, angle = _centre_and_yaw(windows[:, :, :1], skeleton)
        normalised = _rigid(windows, centre, rotation)
        first = clip.frame_range[0]
        for k, start in enumerate(starts):
            stop_src = min(clip.num_frames, int(np.floor((min(start + window, length) - 1) * ratio + 1e-9)) + 1)
            meta = copy.deepcopy(clip.meta)
            meta["world"] = _smart_world(centre[k], rotation[k], angle[k])
            meta["window"] = k
            out.append(RawClip(
                motion=normalised[k], fps=target_fps, label=clip.label, source=clip.source,
                frame_range=(first + int(round(start * ratio)), first + stop_src),
                person_indices=clip.person_indices, meta=meta,
            ))
    stats = {"protocol": "smart", "window": window, "stride": stride, "fps": fps,
             "clips_in": len(clips), "windows_out": len(out),
             "short_clips_padded": padded, "short_clips_dropped": dropped}
    return out, stats


def _smart_world(centre, rotation, angle) -> dict:
    return {"protocol": "smart", "translation": [float(v) for v in centre],
            "rotation_y": float(angle), "rotation": np.asarray(rotation, dtype=float).tolist()}


def _centre_and_yaw(first_frames, skeleton):
    """Per window: centre (W, 3), rotation about y (W, 3, 3) and its angle (W,).

    ``first_frames`` is (W, M, 1, V, 3); person 0 defines the transform.
    """
    frame = first_frames[:, 0, 0].astype(np.float64)  # (W, V, 3)
    centre = frame[:, skeleton.center_joint]
    lateral = _lateral(frame, skeleton)  # right - left, (W, 3)
    # Turn about y by theta so that right - left maps onto -x (the body then faces +z).
    angle = np.arctan2(-lateral[:, 2], -lateral[:, 0])
    degenerate = np.hypot(lateral[:, 0], lateral[:, 2]) < 1e-9
    angle = np.where(degenerate, 0.0, angle)
    return centre, axis_rotation(angle, "y"), angle


def _lateral(frame, skeleton):
    """right - left from the hips, or the shoulders where hips are missing or degenerate.

    A skeleton with neither pair (none given and none inferred from its parts or joint
    names) gets a zero lateral axis, i.e. no turn, and a warning.
    """
    pairs = [p for p in (skeleton.hips, skeleton.shoulders) if p is not None]
    if not pairs:
        import warnings

        warnings.warn(f"skeleton {skeleton.name!r} defines neither hips nor shoulders and none could be "
                      "inferred from its parts or joint names: facing is not normalised (no turn about "
                      "the vertical). Add 'hips' or 'shoulders' ([left, right] joint indices), or left/right leg "
                      "or arm 'parts', to the rig", stacklevel=4)
        return np.zeros((frame.shape[0], 3), dtype=np.float64)
    lateral = frame[:, pairs[0][1]] - frame[:, pairs[0][0]]
    for left, right in pairs[1:]:
        weak = np.hypot(lateral[:, 0], lateral[:, 2]) < 1e-6
        lateral = np.where(weak[:, None], frame[:, right] - frame[:, left], lateral)
    return lateral


# ---- ntu (2s-AGCN) -------------------------------------------------------------------

def _ntu(clips, skeleton, frames=300, persons=2):
    frames, persons = int(frames), int(persons)
    if frames < 1 or persons < 1:
        raise ValueError(f"ntu protocol: frames and persons must be >= 1, got {frames}, {persons}")
    out, truncated, extra_persons, null_frames, empty = [], 0, 0, 0, 0
    for clip in clips:
        motion = clip.motion
        extra_persons += motion.shape[0] > persons
        motion = _fix_persons(motion, persons)
        valid = np.abs(motion).sum(axis=(2, 3)) > 0  # (M, T) non-null frames
        if not valid[0].any():
            empty += 1
            continue
        null_frames += int((~valid[0]).sum())
        truncated += int(valid[0].sum() > frames)
        filled = np.stack([_repeat_to_length(motion[m][valid[m]], frames) for m in range(persons)])
        source_frames = min(int(valid[0].sum()), frames)
        source_persons = int(min(clip.num_persons, persons))
        centre = filled[0, :, skeleton.center_joint].astype(np.float64)  # (T, 3), per frame
        present = _present_persons(filled)
        centred = np.where(present[:, None, None, None], filled - centre[None, :, None, :], 0.0)
        rotation = _spine_up_shoulders_x(centred[0, 0], skeleton)
        normalised = np.einsum("ij,mtvj->mtvi", rotation, centred).astype(np.float32)
        meta = copy.deepcopy(clip.meta)
        meta["world"] = {"protocol": "ntu", "translation": centre.tolist(), "rotation": rotation.tolist(),
                         "frames": source_frames, "persons": source_persons}
        out.append(RawClip(motion=normalised, fps=clip.fps, label=clip.label, source=clip.source,
                           frame_range=clip.frame_range, person_indices=clip.person_indices, meta=meta))
    stats = {"protocol": "ntu", "frames": frames, "persons": persons, "clips_in": len(clips),
             "clips_out": len(out), "truncated": truncated, "clips_with_extra_persons": extra_persons,
             "null_frames_removed": null_frames, "empty_clips_dropped": empty}
    return out, stats


def _spine_up_shoulders_x(frame, skeleton):
    """Rotation taking spine[0]->spine[1] onto +y, then turning (left - right) onto +x."""
    if len(skeleton.spine) >= 2:
        bottom, top = skeleton.spine[0], skeleton.spine[1]
    else:
        bottom, top = skeleton.root, skeleton.center_joint
    tilt = _minimal_rotation(frame[top] - frame[bottom], np.array([0.0, 1.0, 0.0]))
    upright = frame @ tilt.T
    pair = skeleton.shoulders or skeleton.hips
    if pair is None:
        import warnings

        warnings.warn(f"skeleton {skeleton.name!r} defines neither hips nor shoulders and none could be "
                      "inferred from its parts or joint names: facing is not normalised (no turn about "
                      "the vertical). Add 'hips' or 'shoulders' ([left, right] joint indices), or left/right leg "
                      "or arm 'parts', to the rig", stacklevel=3)
        return tilt
    right_minus_left = upright[pair[1]] - upright[pair[0]]
    if np.hypot(right_minus_left[0], right_minus_left[2]) < 1e-9:
        return tilt
    angle = np.arctan2(-right_minus_left[2], -right_minus_left[0])
    return axis_rotation(angle, "y") @ tilt


def _minimal_rotation(vector, target):
    """The smallest rotation taking the direction of ``vector`` onto unit ``target`` (Rodrigues)."""
    norm = np.linalg.norm(vector)
    if norm < 1e-9:
        return np.eye(3)
    v = vector / norm
    axis = np.cross(v, target)
    sin, cos = np.linalg.norm(axis), float(np.dot(v, target))
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        # Opposite directions: half a turn about any axis perpendicular to target.
        perpendicular = np.cross(target, [1.0, 0.0, 0.0])
        if np.linalg.norm(perpendicular) < 1e-6:
            perpendicular = np.cross(target, [0.0, 0.0, 1.0])
        axis, sin, cos = perpendicular / np.linalg.norm(perpendicular), 0.0, -1.0
    else:
        axis = axis / sin
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + sin * k + (1 - cos) * (k @ k)


def _repeat_to_length(frames, length):
    """(T, V, 3) -> (length, V, 3) by cyclic repetition (2s-AGCN's padding) or truncation."""
    if len(frames) == 0:
        return np.zeros((length, *frames.shape[1:]), dtype=frames.dtype)
    return frames[np.arange(length) % len(frames)]


# ---- shared geometry -----------------------------------------------------------------

def _rigid(windows, centre, rotation):
    """rotation @ (x - centre) per window, (W, M, T, V, 3); absent persons stay zero."""
    x = windows.astype(np.float64) - centre[:, None, None, None, :]
    y = np.einsum("wij,wmtvj->wmtvi", rotation, x)
    present = np.abs(windows).reshape(*windows.shape[:2], -1).sum(-1) > 0  # (W, M)
    return np.where(present[:, :, None, None, None], y, 0.0).astype(np.float32)


def _present_persons(motion):
    return np.abs(motion).reshape(motion.shape[0], -1).sum(-1) > 0


def _fix_persons(motion, num_persons):
    if motion.shape[0] >= num_persons:
        return motion[:num_persons]
    pad = np.zeros((num_persons - motion.shape[0], *motion.shape[1:]), dtype=motion.dtype)
    return np.concatenate([motion, pad], axis=0)


def _interpolate(motion, positions, upper=None):
    """Sample (M, T, V, 3) at fractional frame positions (K,) -> (M, K, V, 3).

    ``upper`` (K,) caps the second neighbour per sample (clip ends in a concatenated batch).
    """
    positions = np.asarray(positions, dtype=np.float64)
    last = motion.shape[1] - 1 if upper is None else np.asarray(upper)
    lower = np.minimum(np.floor(positions).astype(np.int64), last)
    weight = (positions - lower).astype(np.float32)[None, :, None, None]
    nxt = np.minimum(lower + 1, last)
    a, b = motion[:, lower], motion[:, nxt]
    return (a * (1 - weight) + b * weight).astype(motion.dtype, copy=False)
