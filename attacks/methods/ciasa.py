"""CIASA (Liu, Akhtar and Mian, 2019): a constrained iterative gradient-sign attack.

Each step: loss = Lc + gan_weight · (−log D(features(q̂))) → sign-gradient step of
`step_size` metres → clip into the L∞ ball of `epsilon` metres around the original →
joint-angle limits (when bounds are given) → skeleton realignment, which restores every
bone length to the original clip's (per frame) by walking the tree from the root.
Realignment comes last so bone lengths are exact; it can move a joint slightly outside
the L∞ ball (by at most the accumulated change of its ancestors).

The discriminator D is pre-trained on clean clips (`train_motion_discriminator`) and
frozen during the attack; its gradient reaches the motion, so `gan_weight` matters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attacks.methods.engine import AttackMethod
from attacks.methods.iaa import clip_linf
from attacks.methods.motion_discriminator import realism_loss
from attacks.methods.skeleton_constraints import realign_bones


@dataclass
class CIASAConfig:
    epsilon: float = 0.01  # L∞ budget, metres
    step_size: float = 0.001  # per-iteration step, metres
    gan_weight: float = 0.1
    discriminator: Any = None  # a MotionDiscriminator; `attack` trains one on its clips when None
    discriminator_steps: int = 200
    angle_bounds: Any = None  # (V, 2) bending-angle box in degrees, see skeleton_constraints
    realign: bool = True


class CIASAMethod(AttackMethod):
    def __init__(self, config: CIASAConfig, originals, skeleton, mask):
        super().__init__(config, originals, skeleton, mask)
        if config.gan_weight and config.discriminator is None:
            raise ValueError("CIASA with gan_weight > 0 needs a discriminator (train_motion_discriminator)")
        disc = config.discriminator
        if disc is not None:
            disc.eval()
            for p in disc.parameters():
                p.requires_grad_(False)

    def loss(self, x, idx, lc):
        c = self.config
        if not c.gan_weight:
            return lc
        mask = None if self.mask is None else self.mask[idx]
        return lc + c.gan_weight * realism_loss(c.discriminator, x, mask)

    def step(self, x, grad, idx, iteration):
        c = self.config
        q0 = self.originals[idx]
        new = clip_linf(x - c.step_size * grad.sign(), q0, c.epsilon)
        if c.realign or c.angle_bounds is not None:
            # without realignment, angle limits keep the current bone lengths
            new = realign_bones(new, q0 if c.realign else new, self.skeleton, angle_bounds=c.angle_bounds)
        return new
