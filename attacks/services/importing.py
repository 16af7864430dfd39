"""Importing a dataset: read every file, apply the protocol, then write it all in one transaction.

Reading happens before the transaction opens, so a broken file stops the import with
the reader's message (file and line) and the database is exactly as before. Clips wait
between the two in a temporary spool under DATA_DIR and are written in batches, so an
import holds one file's clips in memory at a time, not the dataset.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import reset_queries, transaction

from attacks.core.data import preprocessing
from attacks.core.errors import AttacksError
from attacks.models import Clip, Dataset, motion_to_bytes
from attacks.core.data.readers import DEFAULT_SKELETON, ReaderError, get_reader
from attacks.core.skeletons import get_skeleton
from attacks.core.progress import steps


class ImportFailed(AttacksError):
    """Raised with a message meant for the person running the import."""


@dataclass
class ImportResult:
    dataset: Dataset
    created: bool
    unchanged: bool
    num_clips: int


# Protocol statistics that are settings (the same for every file), not counts to add up.
PROTOCOL_SETTINGS = ("protocol", "window", "stride", "fps", "frames", "persons", "short")
WRITE_BATCH = 200


@dataclass
class SpooledClip:
    """A read and protocol-processed clip whose motion and metadata wait on disk (`Spool`)."""
    source: str
    label: str
    fps: float
    frame_range: tuple
    person_indices: list
    shape: tuple
    offset: int  # bytes into the spool's motions file
    meta_span: tuple  # (start, length) in bytes of its JSON metadata
    class_id: object  # what `class_order` sorts by

    @property
    def meta(self):  # what `class_order` reads
        return {} if self.class_id is None else {"class_id": self.class_id}


class Spool:
    """Clips written to a temporary folder file by file, so an import holds one file's clips
    in memory at a time (NTU RGB+D at its protocol is some 10 GB), however large the dataset."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.clips: list[SpooledClip] = []
        self._motions = open(directory / "motions.f32", "w+b")
        self._meta = open(directory / "meta.jsonl", "w+b")

    def add(self, clip) -> None:
        data = motion_to_bytes(clip.motion)
        meta = json.dumps(_jsonable(clip.meta)).encode()
        self.clips.append(SpooledClip(
            source=clip.source, label=clip.label, fps=float(clip.fps), frame_range=tuple(clip.frame_range),
            person_indices=[int(p) for p in clip.person_indices], shape=tuple(clip.motion.shape),
            offset=self._motions.tell(), meta_span=(self._meta.tell(), len(meta)),
            class_id=clip.meta.get("class_id")))
        self._motions.write(data)
        self._meta.write(meta)

    def motion_bytes(self, clip: SpooledClip) -> bytes:
        self._motions.flush()
        return os.pread(self._motions.fileno(), 4 * int(np.prod(clip.shape)), clip.offset)

    def meta(self, clip: SpooledClip) -> dict:
        self._meta.flush()
        return json.loads(os.pread(self._meta.fileno(), clip.meta_span[1], clip.meta_span[0]))

    def close(self):
        self._motions.close()
        self._meta.close()


def read_clips(fmt, path, skeleton, spool: Spool, options=None, protocol="raw", protocol_options=None,
               progress=True) -> dict:
    """Read every file, apply the protocol file by file and spool the clips; returns the
    protocol's statistics summed over files (the protocols treat each clip on its own, so
    this equals applying them to the whole list at once)."""
    reader = get_reader(fmt)
    files = reader.list_files(path)
    stats, read = {}, 0
    for f in steps(files, f"reading {fmt}", "file", enabled=progress, min_interval=10.0):
        clips = reader.read_file(f, skeleton, **(options or {}))
        for clip in clips:
            if clip.motion.shape[2] != skeleton.num_joints:
                raise ReaderError(clip.source, f"clip has {clip.motion.shape[2]} joints, skeleton "
                                  f"{skeleton.name!r} has {skeleton.num_joints}")
        read += len(clips)
        if not clips:
            continue
        processed, file_stats = preprocessing.apply_protocol(clips, protocol, skeleton, **(protocol_options or {}))
        for key, value in file_stats.items():
            if key in PROTOCOL_SETTINGS or not isinstance(value, (int, np.integer)):
                stats.setdefault(key, value)
            else:
                stats[key] = stats.get(key, 0) + int(value)
        for clip in processed:
            spool.add(clip)
    if not read:
        raise ReaderError(path, "no clips found")
    return stats


def class_order(clips) -> list[str]:
    """Class names in the dataset's own order: by numeric class id where readers give one."""
    first = {}
    for c in clips:
        first.setdefault(c.label, c.meta.get("class_id", float("inf")))
    return sorted(first, key=lambda label: (first[label], label))


def content_digest(spool: Spool, class_names) -> str:
    h = hashlib.sha256("\n".join(class_names).encode())
    for c in spool.clips:
        h.update(c.source.encode())
        h.update(c.label.encode())
        h.update(spool.motion_bytes(c))
    return h.hexdigest()


def import_dataset(fmt, path, name, skeleton=None, protocol="raw", reader_options=None,
                   protocol_options=None, progress=True) -> ImportResult:
    spool_dir = Path(settings.DATA_DIR) / "tmp"
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="import-", dir=spool_dir) as tmp:
        spool = Spool(Path(tmp))
        try:
            return _import(spool, fmt, path, name, skeleton, protocol, reader_options, protocol_options, progress)
        finally:
            spool.close()


def _import(spool, fmt, path, name, skeleton, protocol, reader_options, protocol_options, progress):
    try:
        skel = get_skeleton(skeleton or DEFAULT_SKELETON.get(fmt) or _missing_skeleton(fmt))
        stats = read_clips(fmt, path, skel, spool, reader_options, protocol, protocol_options, progress)
    except (ReaderError, ValueError, OSError) as e:
        raise ImportFailed(str(e)) from e
    clips = spool.clips
    if not clips:
        raise ImportFailed(f"{path}: protocol {protocol!r} left no clips ({stats})")
    class_names = class_order(clips)
    label_of = {n: i for i, n in enumerate(class_names)}
    digest = content_digest(spool, class_names)
    fps_values = {round(c.fps, 6) for c in clips}
    if len(fps_values) > 1:
        raise ImportFailed(f"{path}: clips have different frame rates {sorted(fps_values)}; resample them first")

    with transaction.atomic():
        existing = Dataset.objects.select_for_update().filter(name=name).first()
        if existing is not None and existing.stats.get("digest") == digest:
            return ImportResult(existing, created=False, unchanged=True, num_clips=existing.clips.count())
        if existing is not None and existing.recognizers.exists():
            raise ImportFailed(
                f"dataset {name!r} already exists with different content and recognizers were trained on it; "
                "import under a new --name")
        dataset = existing or Dataset(name=name)
        dataset.format = fmt
        dataset.protocol = protocol
        dataset.source_path = str(Path(path))
        dataset.skeleton = skel.to_dict()
        dataset.fps = float(clips[0].fps)
        dataset.class_names = class_names
        dataset.options = {"reader": reader_options or {}, "protocol": protocol_options or {}}
        dataset.stats = {**_jsonable(stats), "digest": digest, "num_clips": len(clips)}
        dataset.save()
        if existing is not None:
            dataset.clips.all().delete()
        for start in range(0, len(clips), WRITE_BATCH):
            rows = []
            for i, c in enumerate(clips[start:start + WRITE_BATCH], start):
                m, t, v, _ = c.shape
                rows.append(Clip(dataset=dataset, index=i, label=label_of[c.label], source=c.source,
                                 frame_start=int(c.frame_range[0]), frame_stop=int(c.frame_range[1]),
                                 person_indices=c.person_indices, meta=spool.meta(c), num_persons=m,
                                 num_frames=t, num_joints=v, data=spool.motion_bytes(c)))
            Clip.objects.bulk_create(rows, batch_size=WRITE_BATCH)
            reset_queries()  # with DEBUG on, Django logs every query, here with its motions in hex
    return ImportResult(dataset, created=existing is None, unchanged=False, num_clips=len(clips))


def _missing_skeleton(fmt):
    raise ReaderError(fmt, f"format {fmt!r} needs --skeleton (ntu25, cmu25 or a JSON file)")


def _jsonable(value):
    """Numpy scalars and arrays inside reader metadata, made JSON-safe."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
