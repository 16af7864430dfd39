"""DGNN: directed graph neural network (Shi, Zhang, Cheng and Lu, CVPR 2019).

The SMART paper attacks DGNN in white- and black-box settings. The skeleton is a directed
graph: joints are vertices and bones are edges pointing away from the root (source =
parent, target = child), read from `skeleton.parents`. Each DGN block updates

    vertex  v' = h_v([v, mean of incoming edges, mean of outgoing edges])
    edge    e' = h_e([e, v'(source), v'(target)])

with h a 1x1 convolution, BatchNorm and ReLU, followed by a 9-frame temporal convolution
on vertices and on edges, a shortcut and ReLU. The incidence matrices are learnable
("adaptive") parameters initialised at the skeleton's; the paper keeps them fixed for the
first epochs, which a trainer can do with `model.incidence_parameters()` and
`requires_grad_(False)`.

Published configuration (`width=None`): ten blocks, 64, 64, 64, 64, 128, 128, 128, 256,
256, 256 channels, time halved at blocks 5 and 8, the first block without shortcut; global
average pooling of vertices and of edges, concatenated, one linear layer. `width=w` uses
w, 2w and 4w.

Input: the paper feeds joint coordinates and bone vectors computed offline. Following the
SMART paper, the bone vectors are computed inside the model from the joints
(`streams.bone_stream`), so gradients reach the joint coordinates through both. The
published two-stream ensemble adds a motion stream (the same network on frame differences
of joints and bones); `motion=True` adds it inside the model and sums the logits.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attacks.core.recognizers.blocks import GCN_TRAINING, DataBatchNorm, TemporalConv, init_bn, init_conv, shortcut
from attacks.core.recognizers.streams import bone_stream, motion_stream

PUBLISHED_WIDTH = 64
BLOCK_PLAN = ((1, 1), (1, 1), (1, 1), (1, 1), (2, 2), (2, 1), (2, 1), (4, 2), (4, 1), (4, 1))  # (width factor, stride)


def incidence_matrices(skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Source and target incidence (V, E) of the directed bone graph, edges in `skeleton.bones`
    order: source[parent, e] = 1 and target[child, e] = 1 for bone e = (child, parent)."""
    bones = skeleton.bones
    source = np.zeros((skeleton.num_joints, len(bones)), dtype=np.float32)
    target = np.zeros_like(source)
    for e, (child, parent) in enumerate(bones):
        source[parent, e] = 1.0
        target[child, e] = 1.0
    return source, target


class DGNN(nn.Module):
    CPU_PRESET = dict(width=16, num_frames=32, epochs=30, **GCN_TRAINING)

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
                 motion=False):
        super().__init__()
        self.skeleton = skeleton
        names = ("spatial", "motion") if motion else ("spatial",)
        self.streams = nn.ModuleDict({
            name: DGNNBackbone(skeleton, num_classes, num_persons, width, in_channels) for name in names
        })
        children = [child for child, _ in skeleton.bones]
        self.register_buffer("bone_children", torch.tensor(children, dtype=torch.long), persistent=False)

    def bones(self, x: torch.Tensor) -> torch.Tensor:
        """Bone vectors (N, C, T, E, M) in `skeleton.bones` order, from joints (N, C, T, V, M)."""
        return bone_stream(x, self.skeleton).index_select(3, self.bone_children)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bones(x)
        logits = self.streams["spatial"](x, b)
        if "motion" in self.streams:
            logits = logits + self.streams["motion"](motion_stream(x), motion_stream(b))
        return logits

    def incidence_parameters(self):
        """The learnable incidence matrices of every block (to freeze them early in training)."""
        return [p for name, p in self.named_parameters() if name.endswith(("source", "target"))]


class DGNNBackbone(nn.Module):
    """One DGNN stream: vertices (N, C, T, V, M) and edges (N, C, T, E, M) -> logits."""

    def __init__(self, skeleton, num_classes, num_persons=2, width=None, in_channels=3):
        super().__init__()
        base = PUBLISHED_WIDTH if width is None else int(width)
        source, target = incidence_matrices(skeleton)
        self.vertex_bn = DataBatchNorm(in_channels, skeleton.num_joints, num_persons)
        self.edge_bn = DataBatchNorm(in_channels, len(skeleton.bones), num_persons)
        blocks, c_in = [], in_channels
        for i, (factor, stride) in enumerate(BLOCK_PLAN):
            c_out = base * factor
            blocks.append(DGNBlock(c_in, c_out, source, target, stride=stride, residual=i > 0))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(2 * c_in, num_classes)

    def forward(self, fv: torch.Tensor, fe: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = fv.shape
        fv = self.vertex_bn(fv).permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        fe = self.edge_bn(fe).permute(0, 4, 1, 2, 3).reshape(n * m, c, t, fe.shape[3])
        for block in self.blocks:
            fv, fe = block(fv, fe)
        pooled = [f.reshape(n, m, f.shape[1], -1).mean(dim=3).mean(dim=1) for f in (fv, fe)]
        return self.fc(torch.cat(pooled, dim=1))


class DGNBlock(nn.Module):
    """Directed graph update of vertices then edges, temporal convolutions, shortcut, ReLU.

    fv (N, C_in, T, V), fe (N, C_in, T, E) -> (N, C_out, T', V), (N, C_out, T', E).
    """

    def __init__(self, c_in, c_out, source, target, stride=1, residual=True):
        super().__init__()
        source = torch.as_tensor(source, dtype=torch.float32)
        target = torch.as_tensor(target, dtype=torch.float32)
        self.source = nn.Parameter(source.clone())
        self.target = nn.Parameter(target.clone())
        # Vertices average over their edges: divide by the skeleton's out-/in-degree (0 -> 0).
        self.register_buffer("out_degree_inv", _safe_inverse(source.sum(1)))
        self.register_buffer("in_degree_inv", _safe_inverse(target.sum(1)))
        self.h_v = nn.Conv2d(3 * c_in, c_out, kernel_size=1)
        self.h_e = nn.Conv2d(c_in + 2 * c_out, c_out, kernel_size=1)
        self.bn_v, self.bn_e = nn.BatchNorm2d(c_out), nn.BatchNorm2d(c_out)
        for conv in (self.h_v, self.h_e):
            init_conv(conv)
        init_bn(self.bn_v)
        init_bn(self.bn_e)
        self.tcn_v = TemporalConv(c_out, c_out, kernel_size=9, stride=stride)
        self.tcn_e = TemporalConv(c_out, c_out, kernel_size=9, stride=stride)
        self.res_v = shortcut(c_in, c_out, stride, residual)
        self.res_e = shortcut(c_in, c_out, stride, residual)
        self.relu = nn.ReLU()

    def forward(self, fv: torch.Tensor, fe: torch.Tensor):
        incoming = torch.einsum("ncte,ve->nctv", fe, self.target) * self.in_degree_inv
        outgoing = torch.einsum("ncte,ve->nctv", fe, self.source) * self.out_degree_inv
        v_new = self.relu(self.bn_v(self.h_v(torch.cat([fv, incoming, outgoing], dim=1))))
        at_source = torch.einsum("nctv,ve->ncte", v_new, self.source)
        at_target = torch.einsum("nctv,ve->ncte", v_new, self.target)
        e_new = self.relu(self.bn_e(self.h_e(torch.cat([fe, at_source, at_target], dim=1))))
        v_out, e_out = self.tcn_v(v_new), self.tcn_e(e_new)
        if self.res_v is not None:
            v_out, e_out = v_out + self.res_v(fv), e_out + self.res_e(fe)
        return self.relu(v_out), self.relu(e_out)


def _safe_inverse(degree: torch.Tensor) -> torch.Tensor:
    return torch.where(degree > 0, 1.0 / degree.clamp(min=1.0), torch.zeros_like(degree))
