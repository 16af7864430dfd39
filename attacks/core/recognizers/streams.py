"""Second-order input streams (bones, motion) computed inside the recognizers.

2s-AGCN, CTR-GCN and friends train separate streams on joints, bones and their temporal
differences. The SMART paper computes these streams *inside* the model, so an attack that
perturbs joint coordinates is scored on every stream: these functions are plain torch
operations on (N, C, T, V, M) tensors, differentiable with respect to the joints.

Public API (stable; other recognizers import it):

    bone_stream(x, skeleton) -> (N, C, T, V, M): joint minus parent joint, root bone zero
    motion_stream(x) -> (N, C, T, V, M): x[t+1] - x[t], last frame zero
    STREAMS: dict name -> callable(x, skeleton) for "joint", "bone", "joint_motion",
             "bone_motion"
    stream_input(name, x, skeleton) -> the named stream of x
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def bone_stream(x: torch.Tensor, skeleton) -> torch.Tensor:
    """Bone vectors placed at their child joint; the root's own "bone" is zero.

    x: (N, C, T, V, M) joint coordinates. Joint j's output is x[j] - x[parent(j)]; the
    root maps onto itself, so its difference is exactly zero.
    """
    _check_joints(x, skeleton)
    parents = tuple(skeleton.parents)
    if torch.compiler.is_compiling():  # a constant of the compiled graph; the cache would break it
        index = torch.tensor(_parent_list(parents), device=x.device)
    else:
        index = _parent_index(parents, x.device)
    return x - x.index_select(3, index)


@functools.lru_cache(maxsize=64)
def _parent_index(parents: tuple, device: torch.device) -> torch.Tensor:
    """Parent of each joint (the root its own), built once per skeleton and device: an
    attack calls the bone stream at every iteration, and a fresh host-to-GPU copy each
    time would stall the device."""
    return torch.tensor(_parent_list(parents), device=device)


def _parent_list(parents: tuple) -> list[int]:
    return [p if p >= 0 else j for j, p in enumerate(parents)]


def motion_stream(x: torch.Tensor) -> torch.Tensor:
    """Forward difference in time, x[t+1] - x[t]; the last frame (no successor) is zero."""
    if x.dim() != 5:
        raise ValueError(f"expected (N, C, T, V, M), got shape {tuple(x.shape)}")
    diff = x[:, :, 1:] - x[:, :, :-1]
    return F.pad(diff, (0, 0, 0, 0, 0, 1))


STREAMS = {
    "joint": lambda x, skeleton: x,
    "bone": bone_stream,
    "joint_motion": lambda x, skeleton: motion_stream(x),
    "bone_motion": lambda x, skeleton: motion_stream(bone_stream(x, skeleton)),
}


def stream_input(name: str, x: torch.Tensor, skeleton) -> torch.Tensor:
    """The named input stream of joint tensor x (N, C, T, V, M)."""
    if name not in STREAMS:
        raise ValueError(f"unknown stream {name!r}: choose one of {', '.join(STREAMS)}")
    return STREAMS[name](x, skeleton)


def _check_joints(x: torch.Tensor, skeleton) -> None:
    if x.dim() != 5 or x.shape[3] != skeleton.num_joints:
        raise ValueError(
            f"expected (N, C, T, V={skeleton.num_joints}, M) for skeleton {skeleton.name!r}, got shape {tuple(x.shape)}"
        )
