"""Motions stored as arrays in one `.npz` archive: SMART-style data and this project's exports.

Two layouts are recognised by the rank of `clips`:

- SMART style (the preprocessed HDM05/MHAD arrays of the SMART line of work):
  `clips` (N, T, V*3), joint-major (x0 y0 z0 x1 ...), one person; `classes` (N,) integer
  ids or (N, C) one-hot rows; optional `class_names` (C,), `fps` (scalar or (N,)),
  `lengths` (N,).
- Export layout (written by `export_dataset`, so an exported dataset can be re-imported):
  `clips` (N, M, T, V, 3) zero-padded in persons and frames, `lengths` (N,), `labels`
  (N,) class ids into `class_names` (or the names themselves), `class_names`, `sources`
  (N,), `fps`, `skeleton` (the rig as a JSON string); optional `persons` (N,) gives each
  clip's person count, otherwise trailing all-zero persons are taken as padding.

Either layout may use `labels` or `classes`. Arrays carry no joint names, so the caller
names the skeleton; a joint count that disagrees with it is an error, not a reshape.
Units are whatever the file holds; `scale=` multiplies them into metres.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from attacks.core.data.readers.base import RawClip, ReaderError

DEFAULT_FPS = 30.0


def list_files(path) -> list[Path]:
    """An archive is one file holding many clips."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(path, "not a file (the npz format reads one .npz archive)")
    return [path]


def read_file(path, skeleton, fps=None, scale=1.0, **options) -> list[RawClip]:
    """One RawClip per row of `clips`; `fps=` overrides the archive's frame rate."""
    path = Path(path)
    if skeleton is None:
        raise ReaderError(path, "arrays carry no joint names: name the skeleton they are on")
    arrays = _Archive(path)
    clips = arrays.require("clips")
    if clips.ndim == 3:
        motions = _smart_motions(arrays, clips, skeleton)
    elif clips.ndim == 5:
        motions = _export_motions(arrays, clips, skeleton)
    else:
        raise ReaderError(path, f"key 'clips' has shape {clips.shape}: expected (N, T, V*3) "
                                f"or (N, M, T, V, 3)")
    n, _, t_max = motions.shape[:3]
    if n == 0:
        raise ReaderError(path, "key 'clips' holds no clips")
    if not np.issubdtype(motions.dtype, np.number):
        raise ReaderError(path, f"key 'clips' has non-numeric dtype {motions.dtype}")
    finite = np.isfinite(motions).reshape(n, -1).all(axis=1)
    if not finite.all():
        raise ReaderError(path, f"key 'clips' row {int(np.argmin(finite))} holds non-finite values")
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise ReaderError(path, f"scale must be a number, got {scale!r}") from None

    labels, class_ids = _labels(arrays, n)
    lengths = _lengths(arrays, n, t_max)
    rates = _frame_rates(arrays, n, fps)
    persons = _person_counts(arrays, motions)
    sources = arrays.optional("sources")
    if sources is not None and sources.shape != (n,):
        raise ReaderError(path, f"key 'sources' has shape {sources.shape}, expected ({n},)")

    out = []
    for i in range(n):
        meta = {"row": i}
        if class_ids is not None:
            meta["class_id"] = int(class_ids[i])
        if sources is not None:
            meta["original_source"] = str(sources[i])
        out.append(RawClip(
            motion=motions[i, : persons[i], : lengths[i]] * np.float32(scale),
            fps=float(rates[i]),
            label=labels[i],
            source=f"{path.name}#{i}",
            frame_range=(0, int(lengths[i])),
            person_indices=tuple(range(int(persons[i]))),
            meta=meta,
        ))
    return out


# ---- layouts -------------------------------------------------------------------

def _smart_motions(arrays, clips, skeleton) -> np.ndarray:
    """(N, T, V*3) -> (N, 1, T, V, 3)."""
    n, t, width = clips.shape
    if width != skeleton.num_joints * 3:
        raise ReaderError(arrays.path, f"key 'clips' has {width} values per frame; skeleton "
                                       f"{skeleton.name!r} needs {skeleton.num_joints} joints x 3 = "
                                       f"{skeleton.num_joints * 3}")
    return clips.reshape(n, 1, t, skeleton.num_joints, 3)


def _export_motions(arrays, clips, skeleton) -> np.ndarray:
    if clips.shape[-1] != 3 or clips.shape[3] != skeleton.num_joints:
        raise ReaderError(arrays.path, f"key 'clips' has shape {clips.shape}: joints x xyz do not match "
                                       f"skeleton {skeleton.name!r} ({skeleton.num_joints} joints x 3)")
    stored = arrays.optional("skeleton")
    if stored is not None:
        try:
            text = stored.item() if stored.size == 1 else None
            rig = json.loads(text.decode("utf-8") if isinstance(text, bytes) else str(text))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise ReaderError(arrays.path, f"key 'skeleton' is not a JSON skeleton ({e})") from None
        joints = rig.get("joints") if isinstance(rig, dict) else None
        parents = rig.get("parents") if isinstance(rig, dict) else None
        if joints is None or list(joints) != list(skeleton.joints) or (
                parents is not None and [int(p) for p in parents] != list(skeleton.parents)):
            name = rig.get("name") if isinstance(rig, dict) else None
            raise ReaderError(arrays.path, f"key 'skeleton' describes rig {name!r}, which differs from the "
                                           f"requested skeleton {skeleton.name!r} in joints or parents")
    return clips


# ---- per-row fields --------------------------------------------------------------

def _labels(arrays, n) -> tuple[list[str], np.ndarray | None]:
    """Label strings and (when the file uses ids) 0-based class ids, from `labels` or `classes`."""
    key = "labels" if "labels" in arrays else "classes"
    if key not in arrays:
        raise ReaderError(arrays.path, "missing key 'classes' (or 'labels'): every clip needs a class")
    raw = arrays.require(key)
    names = arrays.optional("class_names")
    if names is not None:
        names = [str(x) for x in names.reshape(-1)]
    if raw.ndim == 2 and raw.shape[0] == n:  # one-hot rows
        if not np.issubdtype(raw.dtype, np.number):
            raise ReaderError(arrays.path, f"key {key!r} one-hot rows must be numeric, got {raw.dtype}")
        if (raw.max(axis=1) <= 0).any():
            row = int(np.argmax(raw.max(axis=1) <= 0))
            raise ReaderError(arrays.path, f"key {key!r} row {row} is not one-hot (no positive entry)")
        ids = raw.argmax(axis=1)
    elif raw.shape == (n,):
        if raw.dtype.kind in "US":
            labels = [str(x) for x in raw]
            if names is None or not set(labels) <= set(names):
                return labels, None
            position = {name: k for k, name in enumerate(names)}
            return labels, np.array([position[x] for x in labels], dtype=np.int64)
        if not np.issubdtype(raw.dtype, np.number):
            raise ReaderError(arrays.path, f"key {key!r} must hold class ids or names, got {raw.dtype}")
        ids = np.rint(raw).astype(np.int64)
        if not np.array_equal(ids, raw):
            raise ReaderError(arrays.path, f"key {key!r} holds non-integer class ids")
    else:
        raise ReaderError(arrays.path, f"key {key!r} has shape {raw.shape}: expected ({n},) ids "
                                       f"or ({n}, C) one-hot rows")
    if (ids < 0).any():
        raise ReaderError(arrays.path, f"key {key!r} holds negative class ids")
    if names is None:
        return [str(int(c)) for c in ids], ids
    if ids.max() >= len(names):
        raise ReaderError(arrays.path, f"key {key!r} refers to class {int(ids.max())} but 'class_names' "
                                       f"lists {len(names)}")
    return [names[int(c)] for c in ids], ids


def _lengths(arrays, n, t_max) -> np.ndarray:
    lengths = arrays.optional("lengths")
    if lengths is None:
        return np.full(n, t_max, dtype=np.int64)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ReaderError(arrays.path, f"key 'lengths' must be ({n},) integers, got {lengths.shape} {lengths.dtype}")
    if (lengths < 1).any() or (lengths > t_max).any():
        raise ReaderError(arrays.path, f"key 'lengths' must lie in 1..{t_max} (the clips' frame count)")
    return lengths.astype(np.int64)


def _frame_rates(arrays, n, override) -> np.ndarray:
    if override is not None:
        try:
            rate = float(override)
        except (TypeError, ValueError):
            raise ReaderError(arrays.path, f"fps must be a number, got {override!r}") from None
        rates = np.full(n, rate)
        key = "fps option"
    else:
        stored = arrays.optional("fps")
        if stored is None:
            return np.full(n, DEFAULT_FPS)
        key = "key 'fps'"
        if stored.size not in (1, n) or not np.issubdtype(stored.dtype, np.number):
            raise ReaderError(arrays.path, f"{key} must be one number or one per clip, got {stored.shape}")
        rates = np.broadcast_to(stored.reshape(-1).astype(np.float64), (n,))
    if not (np.isfinite(rates) & (rates > 0)).all():
        raise ReaderError(arrays.path, f"{key} must be positive")
    return rates


def _person_counts(arrays, motions) -> np.ndarray:
    """Each clip's persons: the `persons` key, else up to the last person with any non-zero value."""
    n, m = motions.shape[:2]
    stored = arrays.optional("persons")
    if stored is not None:
        if stored.shape != (n,) or not np.issubdtype(stored.dtype, np.integer) or \
                (stored < 1).any() or (stored > m).any():
            raise ReaderError(arrays.path, f"key 'persons' must be ({n},) integers in 1..{m}")
        return stored.astype(np.int64)
    used = (motions != 0).reshape(n, m, -1).any(axis=2)  # (N, M)
    last = m - np.argmax(used[:, ::-1], axis=1)  # one past the last used person
    return np.where(used.any(axis=1), last, 1)


# ---- archive access ------------------------------------------------------------------

class _Archive:
    """An open .npz whose failures name the file and the key."""

    def __init__(self, path: Path):
        self.path = path
        if path.suffix.lower() == ".npy":
            raise ReaderError(path, "a single .npy array, not an .npz archive of named arrays")
        if not zipfile.is_zipfile(path):
            raise ReaderError(path, "not an .npz archive (no zip structure; is it a text or .npy file?)")
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ReaderError(path, f"not a readable .npz archive ({e})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ReaderError(path, "a single .npy array, not an .npz archive of named arrays")
        with data:
            self._arrays = {}
            for key in data.files:
                try:
                    self._arrays[key] = data[key]
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                    raise ReaderError(path, f"key {key!r} cannot be read ({e})") from None

    def __contains__(self, key) -> bool:
        return key in self._arrays

    def require(self, key) -> np.ndarray:
        if key not in self._arrays:
            raise ReaderError(self.path, f"missing key {key!r} (keys present: {', '.join(sorted(self._arrays)) or 'none'})")
        return self._arrays[key]

    def optional(self, key):
        return self._arrays.get(key)
