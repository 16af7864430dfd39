"""Issue 13, numerical core: budget calibration on a toy where the right ε is known, and
the complete CIASA (angle limits enforced, budget kept, discriminator trained alternately
on training motions only)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from attacks.services.calibration import BudgetPoint, bisect_budget
from attacks.core.methods.metrics import linf_displacement
from attacks.core.methods import (CIASAConfig, attack, bone_angle_bounds_from_motions, bone_bending_angles, prepare_ciasa,
                             train_discriminator_against_attack)
from attacks.core.skeletons import Skeleton, get_skeleton

CHAIN = Skeleton(name="chain4", joints=("a", "b", "c", "d"), parents=(-1, 0, 1, 2), spine=(0,))
NTU = get_skeleton("ntu25")


class MeanX(nn.Module):
    """Two classes from the mean x of joint 0 over frames: class 0 while it is positive.

    A sign-gradient step lowers that x in every frame by the step, so the smallest L∞
    perturbation that flips a motion whose joint 0 sits at x = m is exactly m."""

    def forward(self, x):  # (N, 3, T, V, M)
        s = x[:, 0, :, 0, 0].mean(dim=1)
        return torch.stack([s, -s], dim=1)


def chain_motions(margins, frames=6):
    n = len(margins)
    base = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
    q = base.expand(n, 1, frames, 4, 3).clone()
    q[..., 0, 0] = torch.as_tensor(margins, dtype=torch.float64)[:, None, None]
    return q


# ---- calibration ---------------------------------------------------------------------------------------

def test_bisection_finds_the_analytic_minimal_linf_budget_of_a_linear_toy():
    margins = [0.002, 0.004, 0.007, 0.011, 0.016]  # minimal flipping L∞ perturbation of each motion, metres
    q, y = chain_motions(margins), torch.zeros(5, dtype=torch.long)
    calls = []

    def evaluate(eps):
        r = attack(MeanX(), q, y, CHAIN, method="iaa", epsilon=eps, step_size=eps / 10, iterations=30)
        calls.append(eps)
        return BudgetPoint(value=eps, succeeded=int(r.success.sum()), attacked=len(q), step_size=eps / 10)

    # a reference that fooled 3 of 5: the smallest budget reaching 60% flips the three smallest margins
    result = bisect_budget(evaluate, 0.6, low=0.001, high=0.05, precision=0.02)
    assert result.reached and result.chosen.succeeded == 3
    assert 0.007 < result.chosen.value <= 0.007 * 1.02 * 1.0001
    assert all((p.rate >= 0.6) == (p.value > 0.007) for p in result.points)  # success is exactly ε > margin
    assert len(calls) == len(result.points) <= 12


def test_bisection_widens_the_bracket_and_reports_an_unreachable_goal():
    def evaluate(eps):  # success 0 below 0.2, 1 above
        return BudgetPoint(value=eps, succeeded=int(eps > 0.2), attacked=1)

    found = bisect_budget(evaluate, 1.0, low=0.001, high=0.05, max_high=1.0, precision=0.01, max_evaluations=20)
    assert found.reached and 0.2 < found.chosen.value <= 0.2 * 1.01 * 1.0001
    assert found.points[:3] == [BudgetPoint(0.05, 0, 1), BudgetPoint(0.2, 0, 1), BudgetPoint(0.8, 1, 1)]
    never = bisect_budget(lambda e: BudgetPoint(e, 0, 4), 0.5, low=0.001, high=0.05, max_high=0.2)
    assert not never.reached and [p.value for p in never.points] == [0.05, 0.2]
    easy = bisect_budget(lambda e: BudgetPoint(e, 4, 4), 0.5, low=0.001, high=0.05, precision=0.1)
    assert 0.001 < easy.chosen.value <= 0.0011 and 0.001 not in [p.value for p in easy.points]


# ---- CIASA -----------------------------------------------------------------------------------------------

class RandomLinear(nn.Module):
    def __init__(self, features, classes=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(features, classes, generator=g, dtype=torch.float64))

    def forward(self, x):
        return x.flatten(1) @ self.w


def straight_chains(n, frames=6, seed=0):
    """Straight chains (bending angle 0) translated along x: every pose inside a [0°, 2°] box."""
    g = torch.Generator().manual_seed(seed)
    q = chain_motions([0.0] * n, frames)
    q[..., 0] += 0.1 * torch.sin(torch.linspace(0, 3, frames, dtype=torch.float64)[None, None, :, None]
                                 + torch.rand(n, 1, 1, 1, generator=g, dtype=torch.float64))
    return q


def test_ciasa_output_respects_the_angle_box_learned_from_training_motions():
    train, q = straight_chains(8, seed=1), straight_chains(3, seed=2)
    bounds = bone_angle_bounds_from_motions(train, CHAIN, margin_deg=2.0)
    assert np.allclose(bounds[2:], [[0.0, 2.0], [0.0, 2.0]])
    model = RandomLinear(3 * 6 * 4)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    common = dict(method="ciasa", gan_weight=0.0, epsilon=0.3, step_size=0.05, iterations=12, early_stop=False)
    limited = attack(model, q, y, CHAIN, train_motions=train, angle_margin=2.0, **common)  # default: "train"
    angles = bone_bending_angles(limited.adversarial, CHAIN)[..., 2:]
    assert (angles <= 2.0 + 1e-6).all()
    assert not torch.equal(limited.adversarial, q)
    free = attack(model, q, y, CHAIN, angle_bounds="none", **common)
    assert bone_bending_angles(free.adversarial, CHAIN)[..., 2:].max() > 10.0  # the limits are what held it


def test_ciasa_realignment_keeps_bones_exact_and_reports_the_effective_budget():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, 1, 6, 25, 3, generator=g, dtype=torch.float64) * 0.3
    model = RandomLinear(3 * 6 * 25)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    common = dict(method="ciasa", gan_weight=0.0, angle_bounds="none", epsilon=0.01, step_size=0.004,
                  iterations=10, early_stop=False)
    kept = attack(model, q, y, NTU, **common)  # alternating projections (the default)
    once = attack(model, q, y, NTU, keep_budget=False, **common)  # one realignment per step
    for r in (kept, once):
        assert torch.allclose(NTU.bone_lengths(r.adversarial), NTU.bone_lengths(q), atol=1e-9)
    used = [linf_displacement(q, r.adversarial) for r in (kept, once)]
    assert (used[1] > 0.012).all()  # realignment alone leaves the ball by a lot
    assert (used[0] < used[1]).all() and (used[0] > 0.005).all()  # the alternation pulls it back
    assert np.allclose(used[0], (kept.adversarial - q).abs().flatten(1).amax(1).numpy())  # what is stored


def test_discriminator_is_updated_alternately_with_the_attack_on_training_motions_only():
    train = straight_chains(10, seed=4).float()
    snapshots, batches = [], []

    def perturb(batch, positions, disc):
        snapshots.append(torch.cat([p.detach().flatten().clone() for p in disc.parameters()]))
        batches.append(list(positions))
        return batch + 0.01 * torch.sign(torch.randn(batch.shape, generator=torch.Generator().manual_seed(0)))

    disc, seen = train_discriminator_against_attack(train, CHAIN, perturb, warmup_steps=3, rounds=3,
                                                    steps_per_round=2, batch_size=4, seed=0)
    assert len(snapshots) == 3 and not torch.equal(snapshots[0], snapshots[1])  # D moved between rounds
    assert set(seen) <= set(range(10)) and all(set(b) <= set(seen) for b in batches)
    assert not any(p.requires_grad for p in disc.parameters())


def test_prepare_ciasa_trains_on_the_training_motions_it_is_given():
    train = straight_chains(6, seed=5)
    model = RandomLinear(3 * 6 * 4)
    labels = model(train.permute(0, 4, 2, 3, 1)).argmax(1)
    cfg = CIASAConfig(gan_weight=0.1, discriminator_steps=2, discriminator_rounds=2, discriminator_attack_steps=2)
    prepared, record = prepare_ciasa(cfg, model, CHAIN, train, labels, batch_size=3)
    assert record["angle_bounds"] == "train" and set(record["discriminator_positions"]) <= set(range(6))
    assert prepared.discriminator is not None and prepared.angle_bounds.shape == (4, 2)
    with pytest.raises(ValueError, match="training motions"):
        prepare_ciasa(cfg, model, CHAIN)
    with pytest.raises(ValueError, match="Euler"):
        prepare_ciasa(CIASAConfig(gan_weight=0, angle_bounds=np.zeros((3, 4, 2))), model, CHAIN)
    assert prepare_ciasa(CIASAConfig(gan_weight=0, angle_bounds="none"), model, CHAIN)[0].angle_bounds is None
