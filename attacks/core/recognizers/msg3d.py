"""MS-G3D (Liu, Zhang, Chen, Wang and Ouyang, CVPR 2020), joint and bone streams in one module.

The SMART paper uses MS-G3D as a black-box target. Two ideas distinguish it:

* disentangled multi-scale aggregation: scale k of a graph convolution links the joints
  exactly k hops apart (plus self loops), each scale normalised on its own, so distant
  joints are not drowned by near ones (`graph.multiscale_adjacency`);
* G3D: a unified spatial-temporal graph over a window of frames in which every joint links
  to itself and to its neighbours in every frame of the window
  (`graph.spatial_temporal_window`), so one graph convolution mixes space and time.

Backbone (per stream, as published): three spatial-temporal blocks with widths 96, 192,
384. Block i adds two pathways and applies ReLU: (a) an MS-GCN (13 scales) followed by two
multi-scale TCNs (the last one without activation), (b) a multi-window G3D module (windows
3 and 5, 6 scales each, summed); then one more multi-scale TCN. Blocks 2 and 3 halve
time. Global average pooling over frames, joints and persons; a linear layer.

The published model is an ensemble of a joint and a bone network trained apart. Here both
live in one module: the bone stream is computed inside from the joints
(`streams.bone_stream`), so attacks on joint coordinates are scored on both, and the
logits are summed. `width=w` sets the first block's width (published 96); it must be a
multiple of 6, the number of temporal branches.

Every graph convolution is `MultiScaleGraphConv`: aggregate each scale first, then one
1x1 convolution over all scales, with a learnable residual adjacency ("A_res", initialised
near zero). `blocks.GraphConv` computes the same function the other way round (1x1 first,
then aggregation); on the 3-channel input of the first block, whose G3D window graphs have
75 and 125 nodes, that order costs about width/3 times more (32 times at full width),
hence a module of its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attacks.core.recognizers import graph
from attacks.core.recognizers.blocks import GCN_TRAINING, DataBatchNorm, MultiScaleTemporalConv, init_bn, init_conv
from attacks.core.recognizers.streams import bone_stream

PUBLISHED_WIDTH = 96
GCN_SCALES = 13
G3D_SCALES = 6
G3D_WINDOWS = (3, 5)


class MSG3D(nn.Module):
    CPU_PRESET = dict(width=6, num_frames=32, epochs=30, **GCN_TRAINING)
    COMPILE_GAIN = 1.03  # bf16 295.9 -> 286.9 ms, after a 243 s cold compile

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3):
        super().__init__()
        self.skeleton = skeleton
        self.streams = nn.ModuleDict({
            name: MSG3DBackbone(skeleton, num_classes, num_persons, width, in_channels)
            for name in ("joint", "bone")
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.streams["joint"](x) + self.streams["bone"](bone_stream(x, self.skeleton))


class MSG3DBackbone(nn.Module):
    """One MS-G3D network (one input stream): (N, C, T, V, M) -> logits."""

    def __init__(self, skeleton, num_classes, num_persons=2, width=None, in_channels=3,
                 gcn_scales=GCN_SCALES, g3d_scales=G3D_SCALES, windows=G3D_WINDOWS):
        super().__init__()
        c1 = PUBLISHED_WIDTH if width is None else int(width)
        if c1 % 6:
            raise ValueError(f"MS-G3D width must be a multiple of 6 (temporal branches), got {c1}")
        widths = (c1, 2 * c1, 4 * c1)
        self.data_bn = DataBatchNorm(in_channels, skeleton.num_joints, num_persons)
        scales = graph.multiscale_adjacency(skeleton, gcn_scales)
        blocks, c_in = [], in_channels
        for i, c_out in enumerate(widths):
            blocks.append(_STGCBlock(skeleton, scales, c_in, c_out, first=i == 0,
                                     g3d_scales=g3d_scales, windows=windows))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = self.data_bn(x)
        x = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        for block in self.blocks:
            x = block(x)
        features = x.reshape(n, m, x.shape[1], -1).mean(dim=3).mean(dim=1)
        return self.fc(features)


class _STGCBlock(nn.Module):
    """relu(MS-GCN pathway + G3D pathway), then a multi-scale TCN.

    The first block keeps full time and widens in its graph convolutions (raw coordinates
    in); later blocks halve time and widen in their first TCN / window collapse.
    """

    def __init__(self, skeleton, scales, c_in, c_out, first, g3d_scales, windows):
        super().__init__()
        stride = 1 if first else 2
        c_gcn = c_out if first else c_in
        self.gcn_path = nn.Sequential(
            MultiScaleGraphConv(c_in, c_gcn, scales),
            _tcn(c_gcn, c_out, stride=stride),
            MultiScaleTemporalConv(c_out, c_out),  # no activation: summed with G3D first
        )
        self.g3d_path = nn.ModuleList(
            G3D(skeleton, c_in, c_out, window, stride, g3d_scales, widen=first) for window in windows
        )
        self.tcn = _tcn(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gcn_path(x)
        for g3d in self.g3d_path:
            y = y + g3d(x)
        return self.tcn(F.relu(y))


class G3D(nn.Module):
    """Multi-scale graph convolution on a spatial-temporal window graph, then window collapse.

    (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V). Frames are gathered into sliding
    windows of `window` frames (zero padded, stride `stride`), each window is one graph of
    window * V nodes, and a (1, window, 1) convolution collapses the window back to V
    joints. As published, the graph convolution keeps the input width except in the first
    block (`widen`, raw coordinates in), where it widens at once; the collapse sets the
    output width.
    """

    def __init__(self, skeleton, c_in, c_out, window, stride, num_scales, widen=False):
        super().__init__()
        self.window, self.stride = int(window), int(stride)
        c_embed = c_out if widen else c_in
        window_graph = graph.spatial_temporal_window(skeleton, self.window)
        self.gcn = MultiScaleGraphConv(c_in, c_embed, graph.multiscale_adjacency(window_graph, num_scales))
        self.collapse = nn.Conv3d(c_embed, c_out, kernel_size=(1, self.window, 1))
        self.bn = nn.BatchNorm2d(c_out)
        init_bn(self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        pad = (self.window - 1) // 2
        windows = F.pad(x, (0, 0, pad, pad)).unfold(2, self.window, self.stride)  # (N, C, T', V, w)
        t_out = windows.shape[2]
        windows = windows.transpose(3, 4).reshape(n, c, t_out, self.window * v)  # frame-major nodes
        y = self.gcn(windows).reshape(n, -1, t_out, self.window, v)
        return self.bn(self.collapse(y).squeeze(3))


class MultiScaleGraphConv(nn.Module):
    """relu(BN(W · [x A_0, x A_1, ..., x A_{K-1}])): MS-G3D's disentangled multi-scale GCN.

    (N, C_in, T, V) -> (N, C_out, T, V) with `scales` (K, V, V) in the `graph.py`
    convention (y[..., w] = sum_v x[..., v] a[v, w]). `A_res` is a learnable (K, V, V)
    correction added to the fixed scales.
    """

    def __init__(self, c_in, c_out, scales):
        super().__init__()
        scales = torch.as_tensor(scales, dtype=torch.float32)
        self.num_scales, v, _ = scales.shape
        self.register_buffer("scales", scales)
        self.A_res = nn.Parameter(torch.empty_like(scales).uniform_(-1e-6, 1e-6))
        self.mlp = nn.Conv2d(self.num_scales * c_in, c_out, kernel_size=1)
        self.bn = nn.BatchNorm2d(c_out)
        init_conv(self.mlp)
        init_bn(self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        a = (self.scales + self.A_res).permute(1, 0, 2).reshape(v, self.num_scales * v)
        y = (x.reshape(n * c * t, v) @ a).view(n, c, t, self.num_scales, v)
        y = y.permute(0, 3, 1, 2, 4).reshape(n, self.num_scales * c, t, v)
        return F.relu(self.bn(self.mlp(y)))


def _tcn(c_in, c_out, stride=1):
    """MS-G3D's multi-scale TCN: branches + residual, then ReLU."""
    return nn.Sequential(MultiScaleTemporalConv(c_in, c_out, stride=stride), nn.ReLU())
