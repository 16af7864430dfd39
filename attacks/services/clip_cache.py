"""Datasets larger than memory: a per-dataset file of world-unit motions, read in chunks.

NTU RGB+D 60 at the `ntu` protocol is 56,880 clips of 2 x 300 x 25 x 3 float32 (about
10 GB); training, classification and generation must not hold a split in memory. The
first use of a dataset writes every clip's world-unit motion (`recognition.world_motion`:
the stored blob with the import protocol's rigid transform undone) one after the other
into `DATA_DIR/cache/clips/<dataset>-<key>/motions.f32`, with an index beside it (clip
index, label, shape and byte offset per clip). The key hashes the dataset's identity and
content digest and its clips' ids, so a re-imported or re-created dataset gets a new
file and the old one is removed; the file is written under a lock and renamed into
place, so concurrent workers never read a partial cache.

Clips are read back with `os.preadv` into fresh arrays, not through a memory map: the
pages of a map stay in the process's resident set once touched (an epoch touches all of
them), whereas read pages live in the kernel's page cache, which the kernel reclaims.

`ClipInputs` is a `torch.utils.data.Dataset` over some clips of the cache: indexing it
with a batch of positions returns what the recognizer sees of them (fixed length and
`protocol_view.normalise`, computed for that batch only). Both are batch-invariant, so a
batch is bit-identical to the same rows of the whole split computed at once, and training,
validation, `classify` and generation give exactly the in-memory results.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db.models import Count, Max, Min

from attacks.core.data import protocol_view
from attacks.models import Clip, Dataset
from attacks.core.data.preprocessing import to_world

CACHE_FORMAT = 1
BUILD_CHUNK = 256  # clips read from the database per query while the cache is written


class ClipCache:
    """The world-unit motions of one dataset's clips, in clip-index order, read by row."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        index = np.load(self.directory / "index.npz")
        self.clip_index = index["clip_index"]  # (N,) sorted
        self.labels = index["labels"]  # (N,)
        self.shapes = index["shapes"]  # (N, 4): M, T, V, 3
        self.offsets = index["offsets"]  # (N + 1,) bytes
        self._fd = os.open(self.directory / "motions.f32", os.O_RDONLY)

    def __len__(self):
        return len(self.clip_index)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def rows(self, clip_indices) -> np.ndarray:
        """Rows of the cache holding the clips with these dataset indices."""
        clip_indices = np.asarray(clip_indices, dtype=np.int64)
        rows = np.searchsorted(self.clip_index, clip_indices)
        if len(rows) and ((rows >= len(self.clip_index)).any()
                          or (self.clip_index[np.minimum(rows, len(self.clip_index) - 1)] != clip_indices).any()):
            raise KeyError(f"clips not in the cache of {self.directory.name}")
        return rows

    def motion(self, row: int) -> np.ndarray:
        out = np.empty(tuple(int(s) for s in self.shapes[row]), dtype="<f4")
        if os.preadv(self._fd, [out], int(self.offsets[row])) != out.nbytes:
            raise OSError(f"{self.directory / 'motions.f32'} is shorter than its index")
        return out

    def motions(self, rows) -> list[np.ndarray]:
        return [self.motion(int(r)) for r in rows]


class ClipInputs(torch.utils.data.Dataset):
    """What a recognizer sees of some clips, computed per batch from a `ClipCache`.

    `inputs[positions]` (an int, a slice, an index array or tensor) -> float32 tensor
    (n, M, T, V, 3) of the recognizer's view; `inputs.model_inputs(positions)` -> the
    world-unit motions, that view and the frame rates (`protocol_view.ModelInputs`), what
    generation attacks. `labels` (N,) int64 of the clips, in the given order.
    """

    def __init__(self, cache: ClipCache, clip_indices, skeleton, spec: dict, fps: float, protocol: str):
        self.cache, self.skeleton, self.spec, self.fps, self.protocol = cache, skeleton, spec, fps, protocol
        self.rows = cache.rows(clip_indices)
        self.labels = cache.labels[self.rows].astype(np.int64)
        self.shape = (len(self.rows), spec["num_persons"], spec["num_frames"], skeleton.num_joints, 3)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, positions):
        if isinstance(positions, (int, np.integer)):
            return self[[int(positions)]][0]
        return torch.from_numpy(self.model_inputs(positions).X)

    def model_inputs(self, positions) -> protocol_view.ModelInputs:
        rows = self.rows[positions.numpy() if torch.is_tensor(positions) else positions]
        return protocol_view.model_inputs(self.cache.motions(np.atleast_1d(rows)), self.skeleton,
                                          self.spec["num_frames"], self.spec["num_persons"], self.fps,
                                          self.protocol)


def clip_cache(dataset: Dataset) -> ClipCache:
    """The dataset's cache, written first if it is missing or stale."""
    root = Path(settings.DATA_DIR) / "cache" / "clips"
    directory = root / f"{dataset.name}-{_key(dataset)}"
    if not (directory / "index.npz").exists():
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f"{dataset.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer; the others wait and then read its file
            if not (directory / "index.npz").exists():
                _build(dataset, directory)
                for stale in root.glob(f"{dataset.name}-*"):
                    suffix = stale.name[len(dataset.name) + 1:]
                    if stale != directory and len(suffix) == 16 and all(c in "0123456789abcdef" for c in suffix):
                        shutil.rmtree(stale, ignore_errors=True)
    return ClipCache(directory)


def split_inputs(dataset: Dataset, clip_indices, spec: dict, protocol: str) -> ClipInputs:
    """`ClipInputs` of these clips (dataset indices) at a recognizer's input size and protocol."""
    return ClipInputs(clip_cache(dataset), clip_indices, dataset.get_skeleton(), spec, dataset.fps, protocol)


def _key(dataset: Dataset) -> str:
    clips = dataset.clips.aggregate(n=Count("id"), low=Min("id"), high=Max("id"))
    identity = {"format": CACHE_FORMAT, "id": dataset.pk, "created": dataset.created_at.isoformat(),
                "digest": dataset.stats.get("digest"), "clips": clips}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _build(dataset: Dataset, directory: Path) -> None:
    rows = list(dataset.clips.order_by("index").values_list(
        "index", "label", "num_persons", "num_frames", "num_joints"))
    shapes = np.array([(m, t, v, 3) for _, _, m, t, v in rows], dtype=np.int64).reshape(-1, 4)
    offsets = np.concatenate([[0], np.cumsum(shapes.prod(axis=1) * 4)]).astype(np.int64)
    tmp = directory.with_name(f"{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    indices = [r[0] for r in rows]
    with open(tmp / "motions.f32", "wb") as f:
        for start in range(0, len(indices), BUILD_CHUNK):
            chunk = indices[start:start + BUILD_CHUNK]
            query = Clip.objects.filter(dataset=dataset, index__in=chunk).order_by("index").only(
                "index", "num_persons", "num_frames", "num_joints", "meta", "data")
            for clip in query:
                f.write(np.ascontiguousarray(to_world(clip.motion(), clip.meta.get("world"), crop=False),
                                             dtype="<f4").tobytes())
    np.savez(tmp / "index.npz", clip_index=np.array(indices, dtype=np.int64),
             labels=np.array([r[1] for r in rows], dtype=np.int64), shapes=shapes, offsets=offsets)
    if os.path.getsize(tmp / "motions.f32") != offsets[-1]:
        raise OSError(f"{tmp}: the motions written do not match the index")
    shutil.rmtree(directory, ignore_errors=True)  # a partial one (no index) left by a crash
    os.replace(tmp, directory)
