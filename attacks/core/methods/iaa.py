"""IAA: the iterative gradient-sign attack on time series (BIM, Fawaz et al. 2019).

Each step moves every coordinate by `step_size` metres against the sign of the
classification-loss gradient and clips the motion back into the L∞ ball of radius
`epsilon` metres around the original. No perceptual term: IAA controls imperceptibility
only through the budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.core.methods.engine import AttackMethod
from attacks.core.methods.registry import Method


@dataclass
class IAAConfig:
    epsilon: float = 0.01  # L∞ budget, metres
    step_size: float = 0.001  # per-iteration step, metres


class IAAMethod(AttackMethod):
    def loss(self, x, idx, lc):
        return lc

    def step(self, x, grad, idx, iteration):
        c = self.config
        return clip_linf(x - c.step_size * grad.sign(), self.originals[idx], c.epsilon)


def clip_linf(x: torch.Tensor, reference: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project x into the L∞ ball of radius epsilon around reference (same shape)."""
    return torch.max(torch.min(x, reference + epsilon), reference - epsilon)


METHOD = Method(name="iaa", config=IAAConfig, implementation=IAAMethod, budget="epsilon")
