"""Small shared building blocks of the graph-convolutional recognizers.

ST-GCN, 2s-AGCN, AS-GCN, CTR-GCN and MS-G3D differ mostly in how one layer mixes joints
(fixed, learned or data-dependent adjacency) and how it mixes frames (one temporal
convolution or several dilated ones). Each of those choices is one module here; the
backbones in `stgcn.py` (and the other recognizers) stack them.

Tensor layout inside the blocks: (N, C, T, V) with persons folded into N. Adjacency
convention (see `graph.py`): y[..., w] = sum_v x[..., v] a[v, w]. Fixed graphs are
registered buffers, so `.to(dtype / device)` moves them and nothing is created on forward.

Public API (stable; other recognizers import it):

    graph_aggregate(x, a) -> (N, C, T, V)
        x (N, K, C, T, V); a (K, V, V) shared or (N, K, V, V) per sample; sums partitions
    GraphConv(in_channels, out_channels, A, *, edge_importance=False, adaptive=False,
              attention=False, attention_ratio=4, residual=False)
        forward(x (N, Cin, T, V), extra=None) -> (N, Cout, T, V)
        unit graph conv: 1x1 conv to K*Cout, aggregate over A_k (* importance_k)
        (+ B_k learned) (+ C_k(x) attention), BatchNorm, (+ residual), ReLU.
    TemporalConv(in_channels, out_channels, kernel_size=9, stride=1, dilation=1)
        (N, Cin, T, V) -> (N, Cout, ceil(T / stride), V): conv (k x 1) + BatchNorm
    MultiScaleTemporalConv(in_channels, out_channels, kernel_size=3, stride=1,
                           dilations=(1, 2, 3, 4), residual=True)
        branches: per dilation 1x1 -> BN -> ReLU -> temporal conv; max-pool branch;
        1x1 branch; concatenated (+ residual). No final activation.
    CTRGC(in_channels, out_channels, rel_reduction=8, num_partitions=1)
        forward(x, a (K, V, V), alpha) -> (N, Cout, T, V): channel-wise topology
        refinement per partition, summed over the K partitions
    CTRGraphConv(in_channels, out_channels, A, adaptive=True, residual=True)
        CTRGC over the K partitions of A (learnable copy PA when adaptive), BatchNorm,
        residual, ReLU (the CTR-GCN unit)
    STBlock(gcn, tcn, in_channels, out_channels, stride=1, residual=True, dropout=0.0)
        forward(x, *gcn_args) -> ReLU(tcn(gcn(x, *gcn_args)) + residual(x))
    DataBatchNorm(in_channels, num_joints, num_persons)
        (N, C, T, V, M) -> same shape, BatchNorm1d over the M*V*C input features
    shortcut(in_channels, out_channels, stride=1, residual=True) -> module or None
        a block's residual branch: none, identity, or a strided 1x1 TemporalConv
    init_conv(conv), init_bn(bn, scale)  -- the initialisations the blocks use
    GCN_TRAINING  -- the train() settings the graph-convolutional CPU presets share
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

# The training settings every graph-convolutional recognizer's CPU_PRESET shares: SGD
# with Nesterov momentum and weight decay, as the GCN papers train, after a short warm-up.
GCN_TRAINING = dict(batch_size=16, lr=0.05, optimizer="sgd", weight_decay=5e-4, warmup_epochs=2)


def init_conv(conv: nn.Module) -> None:
    """He initialisation (fan-out) and zero bias: what ST-GCN-family code trains from."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if getattr(conv, "bias", None) is not None:
        nn.init.zeros_(conv.bias)


def init_bn(bn: nn.Module, scale: float = 1.0) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def graph_aggregate(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Sum over partitions k of x_k mixed over joints by a_k.

    x: (N, K, C, T, V); a: (K, V, V) or (N, K, V, V). Returns (N, C, T, V).
    """
    if a.dim() == 3:
        return torch.einsum("nkctv,kvw->nctw", x, a)
    return torch.einsum("nkctv,nkvw->nctw", x, a)


def _as_buffer_tensor(a) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach().clone().float()
    else:
        t = torch.from_numpy(np.asarray(a, dtype=np.float32).copy())
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[1] != t.shape[2]:
        raise ValueError(f"adjacency must be (K, V, V), got shape {tuple(t.shape)}")
    return t


class GraphConv(nn.Module):
    """Unit spatial graph convolution over K adjacency partitions.

    Options cover the family: `edge_importance` (ST-GCN: a learnable mask multiplying
    A), `adaptive` (2s-AGCN: a learnable additive B, initialised at zero), `attention`
    (2s-AGCN: a data-dependent C_k = softmax(theta(x)^T phi(x)) per partition), and
    `residual` (2s-AGCN's inner shortcut). `extra` in forward is an optional additional
    adjacency (K, V, V) or (N, K, V, V) added to the effective graph.
    """

    def __init__(self, in_channels: int, out_channels: int, A, *, edge_importance: bool = False,
                 adaptive: bool = False, attention: bool = False, attention_ratio: int = 4,
                 residual: bool = False):
        super().__init__()
        A = _as_buffer_tensor(A)
        self.num_partitions = k = A.shape[0]
        self.in_channels, self.out_channels = in_channels, out_channels
        self.register_buffer("A", A)
        self.importance = nn.Parameter(torch.ones_like(A)) if edge_importance else None
        self.B = nn.Parameter(torch.zeros_like(A)) if adaptive else None
        if attention:
            self.inter_channels = max(out_channels // attention_ratio, 1)
            self.theta = nn.Conv2d(in_channels, k * self.inter_channels, 1)
            self.phi = nn.Conv2d(in_channels, k * self.inter_channels, 1)
            init_conv(self.theta)
            init_conv(self.phi)
        else:
            self.theta = self.phi = None
        self.conv = nn.Conv2d(in_channels, k * out_channels, 1)
        init_conv(self.conv)
        self.bn = nn.BatchNorm2d(out_channels)
        if residual:
            self.down = _pointwise(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
            init_bn(self.bn, 1e-6)  # start as the shortcut; the graph branch grows in
        else:
            self.down = None
            init_bn(self.bn)
        self.relu = nn.ReLU()

    def adjacency(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """The effective graph: (K, V, V), or (N, K, V, V) when attention uses x."""
        a = self.A
        if self.importance is not None:
            a = a * self.importance
        if self.B is not None:
            a = a + self.B
        if self.theta is not None and x is not None:
            n, _, t, v = x.shape
            k, c = self.num_partitions, self.inter_channels
            q = self.theta(x).reshape(n, k, c * t, v)
            s = self.phi(x).reshape(n, k, c * t, v)
            att = torch.softmax(torch.einsum("nkcv,nkcw->nkvw", q, s) / (c * t), dim=-2)
            a = a + att
        return a

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        n, _, t, v = x.shape
        a = self.adjacency(x)
        if extra is not None:
            a = a + extra
        y = self.conv(x).reshape(n, self.num_partitions, self.out_channels, t, v)
        y = self.bn(graph_aggregate(y, a))
        if self.down is not None:
            y = y + self.down(x)
        return self.relu(y)


class TemporalConv(nn.Module):
    """Convolution along time only (kernel k x 1) followed by BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), stride=(stride, 1),
                              padding=(pad, 0), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        init_conv(self.conv)
        init_bn(self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MultiScaleTemporalConv(nn.Module):
    """Parallel temporal branches with different dilations (MS-G3D / CTR-GCN).

    Channels are split over len(dilations) dilated branches, one max-pool branch and one
    pointwise branch; the first branch takes any remainder so the widths add up.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilations=(1, 2, 3, 4), residual: bool = True):
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels < num_branches:
            raise ValueError(f"out_channels={out_channels} is smaller than the {num_branches} branches")
        widths = [out_channels // num_branches] * num_branches
        widths[0] += out_channels - sum(widths)
        branches = []
        for w, d in zip(widths, dilations):
            branches.append(nn.Sequential(
                _pointwise(in_channels, w), nn.ReLU(),
                TemporalConv(w, w, kernel_size=kernel_size, stride=stride, dilation=d),
            ))
        w_pool, w_point = widths[-2], widths[-1]
        pool_bn = nn.BatchNorm2d(w_pool)
        init_bn(pool_bn)
        branches.append(nn.Sequential(
            _pointwise(in_channels, w_pool), nn.ReLU(),
            nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)), pool_bn,
        ))
        branches.append(_pointwise(in_channels, w_point, stride=stride))
        self.branches = nn.ModuleList(branches)
        self.residual = shortcut(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)
        if self.residual is not None:
            y = y + self.residual(x)
        return y


class CTRGC(nn.Module):
    """Channel-wise topology refinement (Chen et al. 2021) over K adjacency partitions.

    Per partition k: a per-sample, per-channel graph, the shared graph a_k plus alpha times
    a refinement modelled from pairwise differences of time-pooled joint features; the K
    partition outputs are summed. All partitions run in one (grouped) convolution each,
    which is the same model as K separate units but far fewer kernel launches on a CPU.
    """

    def __init__(self, in_channels: int, out_channels: int, rel_reduction: int = 8, num_partitions: int = 1):
        super().__init__()
        if in_channels <= 16:  # the raw-coordinate input layer
            self.rel_channels = 8
        else:
            self.rel_channels = max(in_channels // rel_reduction, 1)
        k, r = num_partitions, self.rel_channels
        self.num_partitions, self.out_channels = k, out_channels
        self.conv1 = nn.Conv2d(in_channels, k * r, 1)
        self.conv2 = nn.Conv2d(in_channels, k * r, 1)
        self.conv3 = nn.Conv2d(in_channels, k * out_channels, 1)
        self.conv4 = nn.Conv2d(k * r, k * out_channels, 1, groups=k)
        for c in (self.conv1, self.conv2, self.conv3, self.conv4):
            init_conv(c)

    def forward(self, x: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """x (N, Cin, T, V); a (K, V, V) or (V, V) when K = 1; alpha a scalar tensor."""
        n, _, t, v = x.shape
        k, c = self.num_partitions, self.out_channels
        a = a.reshape(k, v, v)
        send = self.conv1(x).mean(-2)  # (N, K*R, V)
        recv = self.conv2(x).mean(-2)
        rel = torch.tanh(send.unsqueeze(-1) - recv.unsqueeze(-2))  # (N, K*R, V, V)
        graph = self.conv4(rel).reshape(n, k, c, v, v) * alpha + a[None, :, None]
        value = self.conv3(x).reshape(n, k, c, t, v)
        return torch.matmul(value, graph).sum(dim=1)  # y[w] = sum_v value[v] graph[v, w]


class CTRGraphConv(nn.Module):
    """The CTR-GCN spatial unit: CTR graph convolution over K partitions, BN, residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, A, adaptive: bool = True, residual: bool = True):
        super().__init__()
        A = _as_buffer_tensor(A)
        self.register_buffer("A", A)
        self.PA = nn.Parameter(A.clone()) if adaptive else None
        self.alpha = nn.Parameter(torch.zeros(1))
        self.ctrgc = CTRGC(in_channels, out_channels, num_partitions=A.shape[0])
        self.bn = nn.BatchNorm2d(out_channels)
        init_bn(self.bn, 1e-6)
        if not residual:
            self.down = None
        elif in_channels == out_channels:
            self.down = nn.Identity()
        else:
            self.down = _pointwise(in_channels, out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.PA if self.PA is not None else self.A
        y = self.bn(self.ctrgc(x, a, self.alpha))
        if self.down is not None:
            y = y + self.down(x)
        return self.relu(y)


class STBlock(nn.Module):
    """One spatial-temporal block: graph conv, temporal conv, block shortcut, ReLU."""

    def __init__(self, gcn: nn.Module, tcn: nn.Module, in_channels: int, out_channels: int,
                 stride: int = 1, residual: bool = True, dropout: float = 0.0):
        super().__init__()
        self.gcn, self.tcn = gcn, tcn
        self.residual = shortcut(in_channels, out_channels, stride, residual)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, *gcn_args) -> torch.Tensor:
        y = self.tcn(self.gcn(x, *gcn_args))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.dropout(self.relu(y))


class DataBatchNorm(nn.Module):
    """Input normalisation: BatchNorm over every (person, joint, coordinate) feature.

    Raw coordinates differ in scale per joint and axis; normalising them per feature
    (ST-GCN's "MVC" data BN) lets a small model train fast and keeps the attack
    differentiable (in eval mode it is an affine map of the input).
    """

    def __init__(self, in_channels: int, num_joints: int, num_persons: int):
        super().__init__()
        self.in_channels, self.num_joints, self.num_persons = in_channels, num_joints, num_persons
        self.bn = nn.BatchNorm1d(num_persons * num_joints * in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if (c, v, m) != (self.in_channels, self.num_joints, self.num_persons):
            raise ValueError(
                f"expected input (N, {self.in_channels}, T, {self.num_joints}, {self.num_persons}), "
                f"got {tuple(x.shape)}"
            )
        y = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
        y = self.bn(y)
        return y.reshape(n, m, v, c, t).permute(0, 3, 4, 2, 1)


def shortcut(in_channels: int, out_channels: int, stride: int = 1, residual: bool = True) -> nn.Module | None:
    """A block's residual branch: None without one, the identity where the shapes already
    match, else a strided 1x1 temporal convolution (with BatchNorm) to the output's shape."""
    if not residual:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)


def _pointwise(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1))
    bn = nn.BatchNorm2d(out_channels)
    init_conv(conv)
    init_bn(bn)
    return nn.Sequential(conv, bn)


__all__ = [
    "graph_aggregate", "GraphConv", "TemporalConv", "MultiScaleTemporalConv", "CTRGC", "CTRGraphConv",
    "STBlock", "DataBatchNorm", "shortcut", "init_conv", "init_bn", "GCN_TRAINING",
]
