"""Exporting a dataset to one .npz file that this project (and plain numpy) can read back."""
from __future__ import annotations

import json

import numpy as np

from attacks.models import Dataset


def dataset_arrays(dataset: Dataset) -> dict:
    clips = list(dataset.clips.order_by("index"))
    if not clips:
        raise ValueError(f"dataset {dataset.name!r} has no clips")
    m = max(c.num_persons for c in clips)
    t = max(c.num_frames for c in clips)
    v = clips[0].num_joints
    out = np.zeros((len(clips), m, t, v, 3), dtype=np.float32)
    for i, c in enumerate(clips):
        out[i, : c.num_persons, : c.num_frames] = c.motion()
    return {
        "clips": out,
        "lengths": np.array([c.num_frames for c in clips], dtype=np.int64),
        "labels": np.array([c.label for c in clips], dtype=np.int64),
        "class_names": np.array(dataset.class_names),
        "sources": np.array([c.source for c in clips]),
        "fps": np.float32(dataset.fps),
        "skeleton": np.array(json.dumps(dataset.skeleton)),
    }


def export_dataset(dataset: Dataset, path) -> int:
    arrays = dataset_arrays(dataset)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return len(arrays["labels"])
