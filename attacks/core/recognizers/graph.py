"""Skeleton graphs for graph-convolutional recognizers, built from the skeleton's bones.

Every adjacency here is derived from `skeleton.bones` (via `skeleton.adjacency()`), so a
new rig needs no code change. Matrices are numpy float32; modules turn them into
registered buffers.

Convention (shared by every block in `blocks.py`): `a[v, w] != 0` means joint `w`
receives a message from joint `v`; a layer computes `y[..., w] = sum_v x[..., v] a[v, w]`
(einsum "...v,vw->...w"). `normalize_digraph` therefore divides every *column* by its sum,
so each receiving joint averages over its neighbours.

Public API (stable; other recognizers import it):

    hop_distance(skeleton, max_hop=None) -> (V, V) float, np.inf beyond max_hop
    normalize_digraph(a) -> a with every column summing to 1 (empty columns stay 0)
    normalize_symmetric(a) -> D^-1/2 a D^-1/2 (degrees from row sums)
    adjacency_partitions(skeleton, mode="spatial", max_hop=1, center=None) -> (K, V, V)
        mode "uniform":  K = 1, normalised (A + I) within max_hop hops
        mode "distance": K = max_hop + 1, one partition per hop distance 0..max_hop
        mode "spatial":  K = 2 * max_hop + 1, ST-GCN partitions: self, then per hop
                         centripetal (towards the centre) and centrifugal (away from it)
        mode "directed": K = 3, 2s-AGCN / CTR-GCN: identity, normalised centripetal
                         bones, normalised centrifugal bones
    k_hop_adjacency(a, k, self_loops=False) -> 0/1 pairs exactly k hops apart (k = 0: I)
    multiscale_adjacency(a_or_skeleton, num_scales, disentangled=True, self_loops=True,
                         normalize=True) -> (num_scales, V', V') MS-G3D scales
    spatial_temporal_window(a, window_size) -> (tV, tV) MS-G3D G3D window graph

`center` defaults to the skeleton's root joint (for NTU the spine shoulder, which is the
"centre of gravity" ST-GCN uses for Kinect skeletons); pass `skeleton.center_joint` or
any joint index to partition around another joint.
"""
from __future__ import annotations

import numpy as np

MODES = ("uniform", "distance", "spatial", "directed")


def hop_distance(skeleton, max_hop: int | None = None) -> np.ndarray:
    """Shortest-path length in bones between every pair of joints (inf past `max_hop`)."""
    a = _binary(skeleton)
    v = len(a)
    limit = v - 1 if max_hop is None else int(max_hop)
    dist = np.full((v, v), np.inf)
    reach = np.eye(v, dtype=bool)
    step = (a + np.eye(v)) > 0
    dist[reach] = 0
    for d in range(1, limit + 1):
        new_reach = (reach.astype(np.int64) @ step.astype(np.int64)) > 0
        dist[new_reach & ~reach] = d
        if (new_reach == reach).all():
            break
        reach = new_reach
    return dist


def normalize_digraph(a: np.ndarray) -> np.ndarray:
    """Divide every column by its sum: each receiving joint averages its incoming messages."""
    a = np.asarray(a, dtype=np.float64)
    col = a.sum(axis=0)
    inv = np.divide(1.0, col, out=np.zeros_like(col), where=col > 0)
    return (a * inv[None, :]).astype(np.float32)


def normalize_symmetric(a: np.ndarray) -> np.ndarray:
    """D^-1/2 A D^-1/2 with degrees from the row sums (GCN / MS-G3D normalisation)."""
    a = np.asarray(a, dtype=np.float64)
    deg = a.sum(axis=1)
    inv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    return (inv[:, None] * a * inv[None, :]).astype(np.float32)


def adjacency_partitions(skeleton, mode: str = "spatial", max_hop: int = 1, center: int | None = None) -> np.ndarray:
    """The stack of partitioned adjacency matrices (K, V, V) a GCN layer convolves with."""
    if mode not in MODES:
        raise ValueError(f"unknown graph mode {mode!r}: choose one of {', '.join(MODES)}")
    if max_hop < 1:
        raise ValueError(f"max_hop must be at least 1, got {max_hop}")
    center = skeleton.root if center is None else int(center)
    if not 0 <= center < skeleton.num_joints:
        raise ValueError(f"center {center} is not a joint of skeleton {skeleton.name!r}")
    hops = hop_distance(skeleton, max_hop)
    v = skeleton.num_joints
    if mode == "directed":
        return _directed_partitions(skeleton, center)
    within = normalize_digraph((hops <= max_hop).astype(np.float64))
    if mode == "uniform":
        return within[None].astype(np.float32)
    if mode == "distance":
        return np.stack([np.where(hops == d, within, 0.0) for d in range(max_hop + 1)]).astype(np.float32)
    # spatial: a[j, i] carries j -> i; centripetal when the sender j is no nearer the centre than i.
    to_center = hop_distance(skeleton)[:, center]
    sender_farther = to_center[:, None] >= to_center[None, :]
    parts = [np.where(hops == 0, within, 0.0)]
    for d in range(1, max_hop + 1):
        at_d = hops == d
        parts.append(np.where(at_d & sender_farther, within, 0.0))
        parts.append(np.where(at_d & ~sender_farther, within, 0.0))
    assert len(parts) == 2 * max_hop + 1 and all(p.shape == (v, v) for p in parts)
    return np.stack(parts).astype(np.float32)


def k_hop_adjacency(a: np.ndarray, k: int, self_loops: bool = False) -> np.ndarray:
    """0/1 matrix of the joint pairs exactly `k` hops apart in graph `a` (k = 0: identity)."""
    a = (np.asarray(a) != 0).astype(np.int64)
    eye = np.eye(len(a), dtype=np.int64)
    if k == 0:
        return eye.astype(np.float32)
    step = np.minimum(a + eye, 1)
    within_k = np.minimum(np.linalg.matrix_power(step, k), 1)
    within_k_1 = np.minimum(np.linalg.matrix_power(step, k - 1), 1)
    out = within_k - within_k_1
    if self_loops:
        out = out + eye
    return out.astype(np.float32)


def multiscale_adjacency(a, num_scales: int, disentangled: bool = True, self_loops: bool = True,
                         normalize: bool = True) -> np.ndarray:
    """MS-G3D's multi-scale graphs (num_scales, V, V).

    `a` is a Skeleton or a 0/1 adjacency (e.g. from `spatial_temporal_window`).
    Disentangled (MS-G3D): scale k holds the pairs exactly k hops apart (plus self loops),
    so far joints are not drowned by near ones; otherwise scale k is (A + I)^k clipped to 1.
    Each scale is symmetrically normalised when `normalize`.
    """
    a = _binary(a)
    eye = np.eye(len(a), dtype=np.float32)
    scales = []
    for k in range(num_scales):
        if disentangled:
            s = k_hop_adjacency(a, k, self_loops=self_loops and k > 0)
        else:
            s = np.minimum(np.linalg.matrix_power((a + eye).astype(np.int64), k), 1).astype(np.float32)
        if normalize:
            s = normalize_symmetric(s)
        scales.append(s)
    return np.stack(scales).astype(np.float32)


def spatial_temporal_window(a, window_size: int) -> np.ndarray:
    """G3D graph over `window_size` frames: every joint links to itself and its neighbours
    in every frame of the window; (window_size * V, window_size * V), frame-major order."""
    a = _binary(a)
    with_self = np.minimum(a + np.eye(len(a), dtype=np.float32), 1)
    return np.tile(with_self, (window_size, window_size)).astype(np.float32)


def _binary(a) -> np.ndarray:
    """0/1 float adjacency without self loops from a Skeleton or a square matrix."""
    if hasattr(a, "adjacency") and callable(a.adjacency):
        m = np.asarray(a.adjacency(), dtype=np.float32)
    else:
        m = (np.asarray(a) != 0).astype(np.float32)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {m.shape}")
    m = m.copy()
    np.fill_diagonal(m, 0)
    return m


def _directed_partitions(skeleton, center: int) -> np.ndarray:
    """Identity, bones pointing towards the centre, bones pointing away (2s-AGCN layout)."""
    v = skeleton.num_joints
    to_center = hop_distance(skeleton)[:, center]
    inward = np.zeros((v, v))
    outward = np.zeros((v, v))
    for c, p in skeleton.bones:
        # a[sender, receiver]; on a tree, adjacent joints differ by exactly one hop to the centre.
        near, far = (c, p) if to_center[c] < to_center[p] else (p, c)
        inward[far, near] = 1.0
        outward[near, far] = 1.0
    return np.stack([np.eye(v), normalize_digraph(inward), normalize_digraph(outward)]).astype(np.float32)
