"""HRNN: the hierarchical bidirectional RNN of Du, Wang and Wang (CVPR 2015).

The SMART paper attacks it as its RNN representative. The body is split into five parts
that are read from the skeleton (`skeleton.parts`: trunk, left_arm, right_arm, left_leg,
right_leg), never from a hard-coded joint order, so any rig with those parts works:

    layer 1  five BRNNs, one per part
    layer 2  four BRNNs on [trunk, limb] for every limb (trunk-left arm, ...)
    layer 3  two BRNNs: upper body [trunk-left arm, trunk-right arm],
             lower body [trunk-left leg, trunk-right leg]
    layer 4  one bidirectional LSTM on [upper, lower]
    then a fully connected layer at every frame, accumulated over time

BRNN layers use tanh units, as in the paper (the "HBRNN-L" variant: only the last layer is
an LSTM). The paper accumulates the per-frame outputs of the fully connected layer before
the softmax; we average instead of summing, which is the same decision rule with a
temperature the fully connected layer absorbs, and keeps logits independent of clip length.

Published hidden sizes (units per direction) for bl1..bl4: 30, 60, 90, 120 (the paper's
HDM05 configuration, the dataset SMART attacks HRNN on). `width=w` scales them as
(w, 2w, 3w, 4w).

Persons: HRNN is a single-person model. With M persons, each part's input at a frame is
the concatenation of that part's coordinates for all M persons (for M = 1 it is exactly
the paper's input), so the model is built for a fixed `num_persons` and checks it.
"""
from __future__ import annotations

import torch
from torch import nn

from attacks.core.skeletons import PART_NAMES

PUBLISHED_HIDDEN = (30, 60, 90, 120)
LIMBS = ("left_arm", "right_arm", "left_leg", "right_leg")


class HRNN(nn.Module):
    CPU_PRESET = dict(width=16, num_frames=64, epochs=50, batch_size=16, lr=1e-3, optimizer="adam", weight_decay=0.0,
                      warmup_epochs=2, grad_clip=5.0)

    def __init__(self, skeleton, num_classes, num_persons=2, num_frames=64, width=None, in_channels=3):
        super().__init__()
        parts = body_parts(skeleton)
        h1, h2, h3, h4 = PUBLISHED_HIDDEN if width is None else tuple(int(width) * k for k in (1, 2, 3, 4))
        self.skeleton = skeleton
        self.num_persons = int(num_persons)
        self.in_channels = int(in_channels)
        self.num_joints = skeleton.num_joints
        for name, joints in parts.items():
            self.register_buffer(f"joints_{name}", torch.tensor(joints, dtype=torch.long), persistent=False)

        def brnn(n_in, n_hidden):
            return nn.RNN(n_in, n_hidden, nonlinearity="tanh", batch_first=True, bidirectional=True)

        per_joint = self.num_persons * self.in_channels
        self.layer1 = nn.ModuleDict({p: brnn(per_joint * len(parts[p]), h1) for p in PART_NAMES})
        self.layer2 = nn.ModuleDict({limb: brnn(2 * 2 * h1, h2) for limb in LIMBS})
        self.layer3 = nn.ModuleDict({half: brnn(2 * 2 * h2, h3) for half in ("upper", "lower")})
        self.layer4 = nn.LSTM(2 * 2 * h3, h4, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * h4, num_classes)

    def part_joints(self, name: str) -> torch.Tensor:
        """Joint indices feeding the layer-1 BRNN of body part `name`."""
        return getattr(self, f"joints_{name}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.num_joints or m != self.num_persons:
            raise ValueError(
                f"HRNN built for (N, {self.in_channels}, T, {self.num_joints}, {self.num_persons}) "
                f"on skeleton {self.skeleton.name!r}, got {tuple(x.shape)}"
            )
        # (N, C, T, V, M) -> (N, T, V, M*C): one feature vector per joint and frame.
        frames = x.permute(0, 2, 3, 4, 1).reshape(n, t, v, m * c)
        part = {
            p: self.layer1[p](frames.index_select(2, self.part_joints(p)).reshape(n, t, -1))[0]
            for p in PART_NAMES
        }
        fused = {limb: self.layer2[limb](torch.cat([part["trunk"], part[limb]], -1))[0] for limb in LIMBS}
        upper = self.layer3["upper"](torch.cat([fused["left_arm"], fused["right_arm"]], -1))[0]
        lower = self.layer3["lower"](torch.cat([fused["left_leg"], fused["right_leg"]], -1))[0]
        body = self.layer4(torch.cat([upper, lower], -1))[0]
        return self.fc(body).mean(dim=1)


def body_parts(skeleton) -> dict[str, tuple[int, ...]]:
    """The five parts HRNN needs, checked: all present, non-empty, covering every joint."""
    missing = [p for p in PART_NAMES if not skeleton.parts.get(p)]
    if missing:
        raise ValueError(
            f"HRNN needs the body parts {', '.join(PART_NAMES)}; skeleton {skeleton.name!r} "
            f"lacks or leaves empty: {', '.join(missing)}"
        )
    covered = {j for p in PART_NAMES for j in skeleton.parts[p]}
    uncovered = [skeleton.joints[j] for j in range(skeleton.num_joints) if j not in covered]
    if uncovered:
        raise ValueError(
            f"HRNN would never see joints {uncovered} of skeleton {skeleton.name!r}: "
            "add them to one of its parts"
        )
    return {p: tuple(skeleton.parts[p]) for p in PART_NAMES}
