"""CIASA (Liu, Akhtar and Mian, 2019): a constrained iterative gradient-sign attack.

Each step: loss = Lc + gan_weight · (−log D(features(q̂))) → sign-gradient step of
`step_size` metres → clip into the L∞ ball of `epsilon` metres around the original →
joint-angle limits → skeleton realignment, which restores every bone length to the
original clip's (per frame) by walking the tree from the root.

Realignment moves a joint by the accumulated change of its ancestors, which can take it
outside the L∞ ball. With `keep_budget` (the default) the two projections alternate
(`projection_rounds`: ball, then angle box and bone lengths), ending with the skeleton's,
so the angle limits and the bone lengths hold exactly on every output and the budget up
to the residual of the last round: the effective budget is reported per sample
(`linf_displacement`, the largest change of any coordinate) and per run in the report's
calibration table. `keep_budget=False` realigns once per step (a larger excess).

Joint-angle limits are on by default (`angle_bounds="train"`): the box of bending angles
observed in clean *training* motions (`skeleton_constraints.bone_angle_bounds_from_motions`),
never in the clips being attacked, widened per frame to hold the attacked clip's own angle
where the clip already lies outside it (`clip_box`: the attack never bends a bone beyond
the box or beyond where the clip had it; a clip outside the box stays feasible). A (V, 2) degree array, or a path to a `.npy` holding
one, gives the box directly; "none" switches the limits off.

The discriminator D is trained on training clips only, alternately with the attack
itself (`motion_discriminator.train_discriminator_against_attack`: CIASA steps on a batch
of training clips, then D steps on real training clips against those perturbed ones), and
frozen while the clips in scope are attacked, so every batch, shard and resumed run sees
the same D. Its gradient reaches the motion, so `gan_weight` matters.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attacks.core.methods.engine import AttackMethod, run_attack
from attacks.core.methods.iaa import clip_linf
from attacks.core.methods.motion_discriminator import realism_loss, train_discriminator_against_attack
from attacks.core.methods.registry import Method
from attacks.core.methods.skeleton_constraints import (bone_angle_bounds_from_motions, bone_bending_angles,
                                                  realign_bones)

ANGLE_SOURCES = ("train", "none")


@dataclass
class CIASAConfig:
    epsilon: float = 0.01  # L∞ budget, metres
    step_size: float = 0.001  # per-iteration step, metres
    gan_weight: float = 0.1
    discriminator: Any = None  # a MotionDiscriminator; trained on training clips when None (see module doc)
    discriminator_steps: int = 200  # warm-up steps against jitter
    discriminator_rounds: int = 8  # alternating rounds against the attack's own perturbations
    discriminator_attack_steps: int = 10  # CIASA iterations per round on the training batch
    angle_bounds: Any = "train"  # "train", "none", a path to a (V, 2) .npy of degrees, or the array
    angle_margin: float = 5.0  # degrees added to each side of a box learned from training motions
    realign: bool = True
    keep_budget: bool = True
    projection_rounds: int = 4  # keep_budget: alternations of (ball, skeleton) projections

    def __post_init__(self):
        if isinstance(self.angle_bounds, str) and self.angle_bounds not in ANGLE_SOURCES \
                and not self.angle_bounds.endswith(".npy"):
            raise ValueError(f"angle_bounds must be 'train', 'none', a .npy path or an array, got {self.angle_bounds!r}")

    @property
    def needs_training_motions(self) -> bool:
        """Whether preparing this config needs clean training motions (a box or a D to learn)."""
        return (isinstance(self.angle_bounds, str) and self.angle_bounds == "train") or \
            bool(self.gan_weight and self.discriminator is None)


def resolve_angle_bounds(spec, skeleton, train_motions=None, margin: float = 5.0):
    """The (V, 2) degree box a spec means, or None for no limits (see the module doc)."""
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return None
    if isinstance(spec, str) and spec == "train":
        if train_motions is None:
            raise ValueError("CIASA's angle limits are learned from training motions: pass train_motions, "
                             "angle_bounds=<array or .npy path>, or angle_bounds='none'")
        return bone_angle_bounds_from_motions(train_motions, skeleton, margin_deg=margin)
    bounds = np.load(Path(spec)) if isinstance(spec, (str, Path)) else np.asarray(spec, dtype=np.float64)
    if bounds.shape != (skeleton.num_joints, 2):
        raise ValueError(
            f"angle bounds need shape ({skeleton.num_joints}, 2) (bending angle per joint, degrees) for "
            f"{skeleton.name}; got {bounds.shape}" + (
                " — a (3, J, 2) array is an Euler-angle box per BVH channel, which needs the rig's local frames "
                "to map onto bending angles (not supported)" if bounds.ndim == 3 else ""))
    return bounds.astype(np.float64)


class CIASAMethod(AttackMethod):
    def __init__(self, config: CIASAConfig, originals, skeleton, mask, fps=None):
        super().__init__(config, originals, skeleton, mask, fps=fps)
        if config.gan_weight and config.discriminator is None:
            raise ValueError("CIASA with gan_weight > 0 needs a discriminator (train_discriminator_against_attack)")
        if isinstance(config.angle_bounds, (str, Path)) and str(config.angle_bounds) == "train":
            raise ValueError("CIASA's angle bounds must be resolved before the attack (resolve_angle_bounds)")
        self.bounds = resolve_angle_bounds(config.angle_bounds, skeleton)
        if self.bounds is not None:
            self.bounds = clip_box(self.bounds, originals, skeleton)
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

    def constrain(self, q, q0, rows):
        """Angle limits and realignment (bone lengths of the original) of candidate motions
        (`rows` index the batch)."""
        c = self.config
        if c.realign or self.bounds is not None:
            # without realignment, angle limits keep the current bone lengths
            q = realign_bones(q, q0 if c.realign else q, self.skeleton,
                              angle_bounds=None if self.bounds is None else self.bounds[rows])
        return q

    def step(self, x, grad, idx, iteration):
        c = self.config
        q0 = self.originals[idx]
        new = self.constrain(clip_linf(x - c.step_size * grad.sign(), q0, c.epsilon), q0, idx)
        if not c.keep_budget:
            return new
        # Alternate the two projections (L∞ ball, then angle box + bone lengths), ending with the
        # skeleton's: angles and bone lengths hold exactly, the budget up to the last residual.
        for _ in range(c.projection_rounds - 1):
            if not bool(_excess(new, q0, c.epsilon).any()):
                break
            new = self.constrain(clip_linf(new, q0, c.epsilon), q0, idx)
        return new


def prepare_ciasa(config: CIASAConfig, model, skeleton, train_motions=None, train_labels=None, *,
                  preprocess=None, seed: int = 0, batch_size: int = 32):
    """CIASA's prepare hook: resolve its angle box and train its discriminator from clean
    training motions, once per run (every batch, shard and resumed run then shares them).

    Returns (config with `angle_bounds` an array or None and `discriminator` set when
    gan_weight > 0, record) where record says what each came from: the box's source and
    the positions in `train_motions` the discriminator saw. The discriminator is trained
    alternately with CIASA itself (`train_discriminator_against_attack`): each round, CIASA
    (with the current D) attacks a batch of training clips for `discriminator_attack_steps`
    iterations, then D learns clean training clips against those perturbations.
    """
    record = {}
    if config.needs_training_motions and train_motions is None:
        raise ValueError("CIASA needs clean training motions (train_motions) to learn its angle box "
                         "and discriminator, or angle_bounds=<array>/'none' and a discriminator (or gan_weight=0)")
    bounds = config.angle_bounds
    if isinstance(bounds, str):
        record["angle_bounds"] = bounds
    bounds = resolve_angle_bounds(bounds, skeleton, train_motions, margin=config.angle_margin)
    config = dataclasses.replace(config, angle_bounds=bounds)
    if config.gan_weight and config.discriminator is None:
        q = torch.as_tensor(train_motions)
        q = q if q.is_floating_point() else q.float()
        labels = torch.as_tensor(np.asarray(train_labels) if not torch.is_tensor(train_labels) else train_labels).long()

        def perturb(batch, positions, disc):
            """CIASA's own AB attack on training clips with the current D (its fakes)."""
            cfg = dataclasses.replace(config, discriminator=disc)
            batch = batch if batch.is_floating_point() else batch.float()
            return run_attack(model, batch, labels[torch.as_tensor(positions)].to(batch.device).long(),
                              CIASAMethod(cfg, batch.detach(), skeleton, None), strategy="ab",
                              iterations=config.discriminator_attack_steps, early_stop=False,
                              preprocess=preprocess).adversarial

        disc, seen = train_discriminator_against_attack(
            q, skeleton, perturb, warmup_steps=config.discriminator_steps, rounds=config.discriminator_rounds,
            batch_size=batch_size, seed=seed)
        config = dataclasses.replace(config, discriminator=disc)
        record["discriminator_positions"] = seen
    return config, record


def clip_box(bounds, originals: torch.Tensor, skeleton) -> torch.Tensor:
    """(N, M, T, V, 2) degrees: the box widened, per sample, person and frame, to hold the
    original's own bending angle, so an original outside the training range stays feasible
    (the attack never bends a bone beyond the box or beyond where the clip already had it)."""
    box = torch.as_tensor(np.asarray(bounds, dtype=np.float64), dtype=originals.dtype, device=originals.device)
    angles = bone_bending_angles(originals, skeleton)  # (N, M, T, V), NaN where undefined
    lo = torch.fmin(box[:, 0].expand_as(angles), angles)  # fmin/fmax ignore a NaN angle
    hi = torch.fmax(box[:, 1].expand_as(angles), angles)
    keep = torch.isnan(box[:, 0]).expand_as(angles)  # unlimited joints stay unlimited
    lo, hi = torch.where(keep, box[:, 0].expand_as(angles), lo), torch.where(keep, box[:, 1].expand_as(angles), hi)
    return torch.stack([lo, hi], dim=-1)


def linf_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample (N,) largest coordinate difference."""
    return (a - b).abs().flatten(1).amax(1)


def _excess(q, q0, epsilon) -> torch.Tensor:
    return linf_distance(q, q0) > epsilon * (1 + 1e-5) + 1e-7


# A config whose box is resolved and whose discriminator is set (or not needed) has nothing
# left to learn: `attack()` then uses it as it is, so a prepared run never trains twice.
METHOD = Method(name="ciasa", config=CIASAConfig, implementation=CIASAMethod, prepare=prepare_ciasa,
                needs_preparation=lambda config: config.needs_training_motions, budget="epsilon")
