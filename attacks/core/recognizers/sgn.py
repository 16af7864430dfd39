"""SGN: Semantics-Guided Neural Networks (Zhang et al., CVPR 2020).

A compact recognizer that the SMART paper uses as a black-box target. Per frame and joint,
positions and velocities are embedded and summed, the joint's identity (a one-hot
"semantic" code) is embedded and concatenated, and a data-dependent adjacency
softmax(θ(z)ᵀ φ(z)) over the joints of each frame drives three residual graph
convolutions. The frame index is embedded and added, joints are max-pooled, a temporal
convolution runs over the frames, frames are max-pooled and a linear layer classifies.

Published configuration (`width=None`): embedding width 64, graph/temporal width 256 and
512, 20 segments on NTU. `width=w` uses w and 4w / 8w.

Length: SGN has one learned embedding per frame index, so it needs a fixed number of
frames. Here that number is `num_frames` (pass num_frames=20 for the published 20
segments). An input with another length is resampled in time by linear interpolation
(deterministic and differentiable, so attacks reach the original frames), instead of the
random one-frame-per-segment sampling the authors train with.

Persons: each person is embedded and classified separately (folded into the batch) and the
pooled features are averaged over persons before the linear layer, i.e. the logits are the
average of the per-person logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PUBLISHED_WIDTH = 64


class SGN(nn.Module):
    CPU_PRESET = dict(width=16, num_frames=64, epochs=50, batch_size=16, lr=1e-3, optimizer="adam", weight_decay=1e-4,
                      warmup_epochs=2)

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3):
        super().__init__()
        base = PUBLISHED_WIDTH if width is None else int(width)
        dim = 4 * base
        v, seg = skeleton.num_joints, int(num_frames)
        if seg < 2:
            raise ValueError(f"SGN needs at least 2 frames, got num_frames={num_frames}")
        self.skeleton = skeleton
        self.num_joints, self.num_frames, self.in_channels = v, seg, int(in_channels)
        self.num_persons = int(num_persons)

        # One-hot codes of joint and frame identity, (1, V, V, 1) and (1, T, 1, T) in (N, C, V, T).
        self.register_buffer("joint_code", torch.eye(v)[None, :, :, None], persistent=False)
        self.register_buffer("frame_code", torch.eye(seg)[None, :, None, :], persistent=False)
        self.position_embed = _Embedding(self.in_channels, base, base, batch_norm_size=self.in_channels * v)
        self.velocity_embed = _Embedding(self.in_channels, base, base, batch_norm_size=self.in_channels * v)
        self.joint_embed = _Embedding(v, base, base)
        self.frame_embed = _Embedding(seg, base, dim)
        self.adjacency = _SemanticAdjacency(2 * base, dim)
        self.gcn = nn.ModuleList([
            _ResidualGraphConv(2 * base, 2 * base),
            _ResidualGraphConv(2 * base, dim),
            _ResidualGraphConv(dim, dim),
        ])
        self.temporal = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=(1, 3), padding=(0, 1)),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Dropout2d(0.2),
            nn.Conv2d(dim, 2 * dim, kernel_size=1),
            nn.BatchNorm2d(2 * dim),
            nn.ReLU(),
        )
        self.fc = nn.Linear(2 * dim, num_classes)
        self._init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.num_joints:
            raise ValueError(
                f"SGN built for (N, {self.in_channels}, T, {self.num_joints}, M) on skeleton "
                f"{self.skeleton.name!r}, got {tuple(x.shape)}"
            )
        # (N, C, T, V, M) -> (N*M, C, V, T): SGN's own layout, persons folded into the batch.
        z = x.permute(0, 4, 1, 3, 2).reshape(n * m, c, v, t)
        z = resample_frames(z, self.num_frames)
        velocity = F.pad(z[..., 1:] - z[..., :-1], (1, 0))
        batch = z.shape[0]
        dynamics = self.position_embed(z) + self.velocity_embed(velocity)
        joints = self.joint_embed(self.joint_code).expand(batch, -1, -1, self.num_frames)
        z = torch.cat([dynamics, joints], dim=1)
        g = self.adjacency(z)
        for layer in self.gcn:
            z = layer(z, g)
        z = z + self.frame_embed(self.frame_code)
        z = z.amax(dim=2, keepdim=True)           # spatial max-pool over joints
        z = self.temporal(z).amax(dim=(2, 3))     # temporal CNN, temporal max-pool
        return self.fc(z.view(n, m, -1).mean(dim=1))

    def _init_weights(self):
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                fan = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels
                nn.init.normal_(mod.weight, 0.0, math.sqrt(2.0 / fan))
        # The graph branch starts switched off, so every GCN begins as its residual 1x1 path.
        for layer in self.gcn:
            nn.init.zeros_(layer.neighbours.weight)


def resample_frames(z: torch.Tensor, frames: int) -> torch.Tensor:
    """Linear resampling of the last (time) axis of (B, C, V, T) to `frames` frames."""
    b, c, v, t = z.shape
    if t == frames:
        return z
    if t < 2:
        return z.expand(b, c, v, frames)
    out = F.interpolate(z.reshape(b, c * v, t), size=frames, mode="linear", align_corners=True)
    return out.view(b, c, v, frames)


class _Embedding(nn.Module):
    """Two 1x1 convolutions with ReLU; optionally a BatchNorm over (channel, joint) first."""

    def __init__(self, n_in, hidden, n_out, batch_norm_size=None):
        super().__init__()
        self.norm = nn.BatchNorm1d(batch_norm_size) if batch_norm_size else None
        self.net = nn.Sequential(
            nn.Conv2d(n_in, hidden, kernel_size=1), nn.ReLU(),
            nn.Conv2d(hidden, n_out, kernel_size=1), nn.ReLU(),
        )

    def forward(self, z):
        if self.norm is not None:
            b, c, v, t = z.shape
            z = self.norm(z.reshape(b, c * v, t)).view(b, c, v, t)
        return self.net(z)


class _SemanticAdjacency(nn.Module):
    """Per-frame joint affinity softmax_w(θ(z_v) · φ(z_w)), shape (B, T, V, V)."""

    def __init__(self, n_in, n_embed):
        super().__init__()
        self.theta = nn.Conv2d(n_in, n_embed, kernel_size=1)
        self.phi = nn.Conv2d(n_in, n_embed, kernel_size=1)

    def forward(self, z):
        scores = torch.einsum("bcvt,bcwt->btvw", self.theta(z), self.phi(z))
        return scores.softmax(dim=-1)


class _ResidualGraphConv(nn.Module):
    """relu(BN(W · (G z) + W' · z)): neighbours aggregated by G plus a 1x1 path on z."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.neighbours = nn.Conv2d(n_in, n_out, kernel_size=1, bias=False)
        self.own = nn.Conv2d(n_in, n_out, kernel_size=1)
        self.bn = nn.BatchNorm2d(n_out)

    def forward(self, z, g):
        aggregated = torch.einsum("btvw,bcwt->bcvt", g, z)
        return F.relu(self.bn(self.neighbours(aggregated) + self.own(z)))
