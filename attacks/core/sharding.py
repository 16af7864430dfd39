"""Splitting a run's attackable clips into shards for Celery workers (plain Python).

A shard is a block of consecutive attackable positions. Its size is rounded up to a
multiple of the batch size so that every shard attacks exactly the batches an
in-process run would: the attack engine's numerics then see the same batch contents,
and a run split over any number of workers stores the same bytes as one process.
"""
from __future__ import annotations

import math

import numpy as np


def aligned_shard_size(shard_size: int, batch_size: int) -> int:
    """`shard_size` rounded up to a whole number of batches."""
    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard size and batch size must be positive")
    return batch_size * math.ceil(shard_size / batch_size)


def plan_shards(positions, shard_size: int, batch_size: int) -> list[list[int]]:
    """Blocks of `positions` (in order), each a whole number of batches; the same input
    always gives the same shards, so a run queued again finds its shards by index."""
    positions = [int(p) for p in np.asarray(positions).ravel()]
    size = aligned_shard_size(shard_size, batch_size)
    return [positions[start:start + size] for start in range(0, len(positions), size)]
