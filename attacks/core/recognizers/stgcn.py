"""The ST-GCN family: ST-GCN, 2s-AGCN, AS-GCN and CTR-GCN from one configurable backbone.

These four recognizers share their skeleton: input BatchNorm, a stack of spatial-temporal
blocks whose channels double twice while time is halved, and global average pooling over
time, joints and persons. They differ in the spatial unit (fixed graph with edge
importance, adaptive graph with attention, structural + actional links, channel-wise
topology refinement), the temporal unit (one 9x1 convolution or multi-scale dilated
branches) and the input streams (joints; bones; motions), which the SMART paper computes
*inside* the model so that attacks on joint coordinates reach every stream.

Public API:

    GCNBackbone(skeleton, unit, in_channels=3, num_persons=2, width=64, num_blocks=10,
                double_at=(0.4, 0.7), dropout=0.0, graph_mode=None, max_hop=1, center=None,
                num_actional=2)
        unit in UNITS = ("stgcn", "agcn", "asgcn", "ctrgcn"); graph_mode None picks the
        unit's published graph ("spatial" for stgcn/asgcn, "directed" for agcn/ctrgcn)
        forward(x (N, C, T, V, M)) -> pooled features (N, out_channels)
    block_schedule(num_blocks, width, double_at) -> [(in, out, stride)] (first block's in
        is the base width; the backbone replaces it with the input channels)
    SkeletonRecognizer(skeleton, num_classes, streams, unit, ...)
        forward(x (N, C, T, V, M)) -> logits (N, num_classes), the sum over streams
    STGCN, AGCN2s, ASGCN, CTRGCN: the registry's constructor
        Cls(skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
            num_blocks=<published>, dropout=0.0, streams=<published>, **backbone options)
        width None = 64 (published); width w gives channels w-2w-4w. Persons are folded
        into the batch and averaged after pooling. Sizes at width 64, ntu25, 60 classes:
        ST-GCN 3.10M parameters; 2s-AGCN 3.47M per stream (x2); AS-GCN 4.48M (no
        prediction head); CTR-GCN 1.45M per stream (x2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attacks.core.skeletons import get_skeleton

from attacks.core.recognizers.blocks import (
    GCN_TRAINING, CTRGraphConv, DataBatchNorm, GraphConv, MultiScaleTemporalConv, STBlock, TemporalConv, graph_aggregate,
    init_conv,
)
from attacks.core.recognizers.graph import adjacency_partitions
from attacks.core.recognizers.streams import STREAMS, stream_input

PUBLISHED_WIDTH = 64
UNITS = ("stgcn", "agcn", "asgcn", "ctrgcn")


def block_schedule(num_blocks: int, width: int, double_at=(0.4, 0.7)) -> list[tuple[int, int, int]]:
    """(in_channels, out_channels, temporal stride) per block.

    Channels double (and time halves) at block indices round(f * num_blocks) for f in
    `double_at`; with 10 blocks and (0.4, 0.7) this is ST-GCN's 64x4, 128x3, 256x3
    with strides at the 5th and 8th block.
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be at least 1, got {num_blocks}")
    doubling = {int(round(f * num_blocks)) for f in double_at}
    doubling.discard(0)
    schedule, channels = [], width
    for i in range(num_blocks):
        out, stride = channels, 1
        if i in doubling:
            out, stride = channels * 2, 2
        schedule.append((channels, out, stride))
        channels = out
    return schedule


class ActionalLinkInference(nn.Module):
    """AS-GCN's A-link inference module as a differentiable, data-dependent adjacency.

    An encoder over joint trajectories passes messages node -> edge -> node -> edge and
    classifies every ordered joint pair into `num_types` link types plus "no link"
    (softmax over types). The "no link" probability is dropped, self links are masked,
    and every column is normalised so each joint averages over its inferred actional
    neighbours. (The original trains this encoder first with an NRI-style decoder; here
    it trains end to end with the classifier, which keeps it deterministic.)
    """

    def __init__(self, in_channels: int, num_joints: int, hidden: int, num_types: int = 2, steps: int = 16):
        super().__init__()
        self.steps, self.num_types = steps, num_types
        self.node1 = nn.Sequential(nn.Linear(in_channels * steps, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.send1, self.recv1 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.node2 = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.send2, self.recv2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.skip = nn.Linear(hidden, hidden, bias=False)
        self.out = nn.Linear(hidden, num_types + 1)
        self.register_buffer("off_diagonal", 1.0 - torch.eye(num_joints))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, T, V) -> actional links (N, num_types, V, V)."""
        n, c, t, v = x.shape
        h = F.adaptive_avg_pool2d(x, (self.steps, v)).permute(0, 3, 1, 2).reshape(n, v, c * self.steps)
        h = self.node1(h)  # (N, V, H)
        e = F.relu(self.send1(h)[:, :, None] + self.recv1(h)[:, None, :])  # (N, V_send, V_recv, H)
        h2 = self.node2(e.mean(dim=1))  # messages arriving at each joint
        e2 = F.relu(self.send2(h2)[:, :, None] + self.recv2(h2)[:, None, :] + self.skip(e))
        p = torch.softmax(self.out(e2), dim=-1)[..., 1:].permute(0, 3, 1, 2)  # (N, types, V, V)
        p = p * self.off_diagonal
        return p / (p.sum(dim=-2, keepdim=True) + 1e-3)


class ActionalStructuralGraphConv(nn.Module):
    """AS-GCN's spatial unit: structural links (S-GCN) + lambda * actional links (A-GCN).

    The structural part convolves over the fixed multi-hop partitions (times a learned
    edge importance); the actional part over the per-sample A-links given at forward.
    """

    def __init__(self, in_channels: int, out_channels: int, A, num_actional: int, lam: float = 0.5):
        super().__init__()
        self.structural = GraphConv(in_channels, out_channels, A, edge_importance=True)
        # The structural unit's BN/ReLU run after the sum, so it is used for its conv and graph only.
        self.num_actional, self.lam, self.out_channels = num_actional, lam, out_channels
        self.actional = nn.Conv2d(in_channels, num_actional * out_channels, 1)
        init_conv(self.actional)

    def forward(self, x: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        s = self.structural
        ys = s.conv(x).reshape(n, s.num_partitions, self.out_channels, t, v)
        ya = self.actional(x).reshape(n, self.num_actional, self.out_channels, t, v)
        y = graph_aggregate(ys, s.adjacency()) + self.lam * graph_aggregate(ya, links)
        return s.relu(s.bn(y))


class GCNBackbone(nn.Module):
    """Input BatchNorm, `num_blocks` spatial-temporal blocks, mean over time, joints, persons."""

    def __init__(self, skeleton, unit: str, in_channels: int = 3, num_persons: int = 2, width: int = PUBLISHED_WIDTH,
                 num_blocks: int = 10, double_at=(0.4, 0.7), dropout: float = 0.0, graph_mode: str | None = None,
                 max_hop: int = 1, center: int | None = None, num_actional: int = 2):
        super().__init__()
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}: choose one of {', '.join(UNITS)}")
        skeleton = get_skeleton(skeleton)
        self.unit = unit
        graph_mode = graph_mode or ("spatial" if unit in ("stgcn", "asgcn") else "directed")
        A = torch.from_numpy(adjacency_partitions(skeleton, graph_mode, max_hop=max_hop, center=center))
        self.data_bn = DataBatchNorm(in_channels, skeleton.num_joints, num_persons)
        schedule = block_schedule(num_blocks, width, double_at)
        blocks = []
        for i, (c_in, c_out, stride) in enumerate(schedule):
            c_in = in_channels if i == 0 else c_in
            gcn, tcn = self._units(unit, c_in, c_out, stride, A, num_actional)
            blocks.append(STBlock(gcn, tcn, c_in, c_out, stride=stride, residual=i > 0, dropout=dropout))
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = schedule[-1][1]
        if unit == "asgcn":
            self.links = ActionalLinkInference(in_channels, skeleton.num_joints, hidden=2 * width,
                                               num_types=num_actional)
        else:
            self.links = None

    @staticmethod
    def _units(unit, c_in, c_out, stride, A, num_actional):
        if unit == "stgcn":
            return GraphConv(c_in, c_out, A, edge_importance=True), TemporalConv(c_out, c_out, 9, stride)
        if unit == "agcn":
            gcn = GraphConv(c_in, c_out, A, adaptive=True, attention=True, residual=True)
            return gcn, TemporalConv(c_out, c_out, 9, stride)
        if unit == "asgcn":
            return ActionalStructuralGraphConv(c_in, c_out, A, num_actional), TemporalConv(c_out, c_out, 9, stride)
        # CTR-GCN's temporal unit has no inner shortcut: the block's residual covers it.
        tcn = MultiScaleTemporalConv(c_out, c_out, kernel_size=5, stride=stride, dilations=(1, 2), residual=False)
        return CTRGraphConv(c_in, c_out, A, adaptive=True, residual=True), tcn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = self.data_bn(x).permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        extra = (self.links(x),) if self.links is not None else ()
        for block in self.blocks:
            x = block(x, *extra)
        return x.mean(dim=(2, 3)).reshape(n, m, -1).mean(dim=1)


class SkeletonRecognizer(nn.Module):
    """One backbone and linear head per input stream; logits are summed over streams."""

    def __init__(self, skeleton, num_classes: int, streams=("joint",), unit: str = "stgcn", num_persons: int = 2,
                 num_frames: int = 64, width: int | None = None, in_channels: int = 3, head_dropout: float = 0.0,
                 **backbone_kwargs):
        super().__init__()
        self.skeleton = get_skeleton(skeleton)
        unknown = [s for s in streams if s not in STREAMS]
        if not streams or unknown:
            raise ValueError(f"streams must be a non-empty subset of {list(STREAMS)}, got {list(streams)}")
        self.streams = tuple(streams)
        self.num_classes, self.num_persons, self.num_frames = num_classes, num_persons, num_frames
        self.in_channels = in_channels
        self.width = PUBLISHED_WIDTH if width is None else int(width)
        self.backbones = nn.ModuleDict({
            s: GCNBackbone(self.skeleton, unit, in_channels=in_channels, num_persons=num_persons, width=self.width,
                           **backbone_kwargs)
            for s in self.streams
        })
        self.heads = nn.ModuleDict({s: nn.Linear(self.backbones[s].out_channels, num_classes) for s in self.streams})
        self.head_dropout = nn.Dropout(head_dropout) if head_dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[3] != self.skeleton.num_joints:
            raise ValueError(
                f"expected input (N, {self.in_channels}, T, {self.skeleton.num_joints}, M), got {tuple(x.shape)}"
            )
        logits = None
        for s in self.streams:
            feats = self.backbones[s](stream_input(s, x, self.skeleton))
            out = self.heads[s](self.head_dropout(feats))
            logits = out if logits is None else logits + out
        return logits


class STGCN(SkeletonRecognizer):
    """ST-GCN (Yan et al. 2018): spatial partitions, edge importance, 9x1 temporal convs."""

    CPU_PRESET = dict(width=16, num_frames=64, epochs=40, **GCN_TRAINING)
    COMPILE_GAIN = 1.54  # bf16 34.9 -> 22.7 ms per sample-iteration

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
                 num_blocks=10, dropout=0.0, streams=("joint",), **kwargs):
        super().__init__(skeleton, num_classes, streams=streams, unit="stgcn", num_persons=num_persons,
                         num_frames=num_frames, width=width, in_channels=in_channels, num_blocks=num_blocks,
                         dropout=dropout, **kwargs)


class AGCN2s(SkeletonRecognizer):
    """2s-AGCN (Shi et al. 2019): adaptive graph A + B + C(x); joint and bone streams,
    the bone stream computed from x inside the model; logits summed."""

    CPU_PRESET = dict(width=8, num_frames=64, epochs=30, **GCN_TRAINING)
    COMPILE_GAIN = 1.07  # bf16 96.7 -> 90.5 ms

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
                 num_blocks=10, dropout=0.0, streams=("joint", "bone"), **kwargs):
        super().__init__(skeleton, num_classes, streams=streams, unit="agcn", num_persons=num_persons,
                         num_frames=num_frames, width=width, in_channels=in_channels, num_blocks=num_blocks,
                         dropout=dropout, **kwargs)


class ASGCN(SkeletonRecognizer):
    """AS-GCN (Li et al. 2019): structural links (3-hop spatial partitions) plus inferred
    actional links; 9 blocks (64x3, 128x3, 256x3). The future-pose prediction head, a
    training-time regulariser in the paper, is omitted."""

    CPU_PRESET = dict(width=12, num_frames=64, epochs=30, **GCN_TRAINING)

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
                 num_blocks=9, dropout=0.0, streams=("joint",), max_hop=3, double_at=(1 / 3, 2 / 3), **kwargs):
        super().__init__(skeleton, num_classes, streams=streams, unit="asgcn", num_persons=num_persons,
                         num_frames=num_frames, width=width, in_channels=in_channels, num_blocks=num_blocks,
                         dropout=dropout, max_hop=max_hop, double_at=double_at, **kwargs)


class CTRGCN(SkeletonRecognizer):
    """CTR-GCN (Chen et al. 2021): channel-wise topology refinement and multi-scale temporal
    convolution; joint and bone streams by default (add "joint_motion", "bone_motion" for
    the four-stream ensemble), computed inside the model and summed."""

    CPU_PRESET = dict(width=8, num_frames=32, epochs=30, **GCN_TRAINING)

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3,
                 num_blocks=10, dropout=0.0, streams=("joint", "bone"), **kwargs):
        super().__init__(skeleton, num_classes, streams=streams, unit="ctrgcn", num_persons=num_persons,
                         num_frames=num_frames, width=width, in_channels=in_channels, num_blocks=num_blocks,
                         dropout=dropout, **kwargs)
