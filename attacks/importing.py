"""Importing a dataset: read every file, apply the protocol, then write it all in one transaction.

Reading happens before the transaction opens, so a broken file stops the import with
the reader's message (file and line) and the database is exactly as before.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from tqdm import tqdm

from . import preprocessing
from .models import Clip, Dataset, motion_to_bytes
from .readers import DEFAULT_SKELETON, ReaderError, get_reader
from .skeletons import get_skeleton


class ImportFailed(Exception):
    """Raised with a message meant for the person running the import."""


@dataclass
class ImportResult:
    dataset: Dataset
    created: bool
    unchanged: bool
    num_clips: int


def read_clips(fmt, path, skeleton, options=None, progress=True):
    reader = get_reader(fmt)
    files = reader.list_files(path)
    clips = []
    for f in tqdm(files, desc=f"reading {fmt}", unit="file", disable=not progress):
        clips.extend(reader.read_file(f, skeleton, **(options or {})))
    if not clips:
        raise ReaderError(path, "no clips found")
    for clip in clips:
        if clip.motion.shape[2] != skeleton.num_joints:
            raise ReaderError(clip.source, f"clip has {clip.motion.shape[2]} joints, skeleton "
                              f"{skeleton.name!r} has {skeleton.num_joints}")
    return clips


def class_order(clips) -> list[str]:
    """Class names in the dataset's own order: by numeric class id where readers give one."""
    first = {}
    for c in clips:
        first.setdefault(c.label, c.meta.get("class_id", float("inf")))
    return sorted(first, key=lambda label: (first[label], label))


def content_digest(clips, class_names) -> str:
    h = hashlib.sha256("\n".join(class_names).encode())
    for c in clips:
        h.update(c.source.encode())
        h.update(c.label.encode())
        h.update(motion_to_bytes(c.motion))
    return h.hexdigest()


def import_dataset(fmt, path, name, skeleton=None, protocol="raw", reader_options=None,
                   protocol_options=None, progress=True) -> ImportResult:
    try:
        skel = get_skeleton(skeleton or DEFAULT_SKELETON.get(fmt) or _missing_skeleton(fmt))
        clips = read_clips(fmt, path, skel, reader_options, progress)
        clips, stats = preprocessing.apply_protocol(clips, protocol, skel, **(protocol_options or {}))
    except (ReaderError, ValueError, OSError) as e:
        raise ImportFailed(str(e)) from e
    if not clips:
        raise ImportFailed(f"{path}: protocol {protocol!r} left no clips ({stats})")
    class_names = class_order(clips)
    label_of = {n: i for i, n in enumerate(class_names)}
    digest = content_digest(clips, class_names)
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
        rows = []
        for i, c in enumerate(clips):
            row = Clip(dataset=dataset, index=i, label=label_of[c.label], source=c.source,
                       frame_start=int(c.frame_range[0]), frame_stop=int(c.frame_range[1]),
                       person_indices=[int(p) for p in c.person_indices], meta=_jsonable(c.meta))
            row.set_motion(c.motion)
            rows.append(row)
        Clip.objects.bulk_create(rows, batch_size=200)
    return ImportResult(dataset, created=existing is None, unchanged=False, num_clips=len(rows))


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
