"""The batched attack loop: per-sample freezing, strategies, IAA/CIASA constraints, reproducibility."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from attacks.core.methods.losses import attack_success
from attacks.core.methods import (
    attack, attack_in_batches, bone_bending_angles, correctly_classified, project_bone_angles,
    random_targets, realign_bones, train_motion_discriminator,
)
from attacks.core.methods.motion_discriminator import realism_loss
from attacks.core.methods.skeleton_constraints import bone_angle_bounds_from_motions, bone_directions
from attacks.core.skeletons import Skeleton, get_skeleton

NTU = get_skeleton("ntu25")
CHAIN = Skeleton(name="chain4", joints=("a", "b", "c", "d"), parents=(-1, 0, 1, 2), spine=(0,))


class ThresholdModel(nn.Module):
    """Two classes from the mean x of joint 0: class 0 when it is positive (margin = that mean)."""

    def forward(self, x):  # x (N, 3, T, V, M)
        s = x[:, 0, :, 0, 0].mean(dim=1)
        return torch.stack([s, -s], dim=1) * 10


class LinearModel(nn.Module):
    """A small seeded linear recognizer over time-pooled and per-frame features."""

    def __init__(self, frames, joints=25, persons=2, classes=6, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.pool = nn.Linear(3 * joints * persons, classes)
        self.temporal = nn.Conv1d(3 * joints * persons, classes, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 2)

    def forward(self, x):
        n, c, t, v, m = x.shape
        f = x.permute(0, 1, 3, 4, 2).reshape(n, c * v * m, t)
        return self.pool(f.mean(2)) + self.temporal(f).mean(2)


def walking_chain(n, frames=12, seed=0):
    """Chain motions (N, 1, T, 4, 3) with unit bones and a little smooth motion."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames)
    base = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 3.0, 0.0]])
    q = base.expand(n, 1, frames, 4, 3).clone()
    phase = torch.rand(n, generator=g)
    q[..., 0] += 0.1 * torch.sin(2 * math.pi * (t[None, :] + phase[:, None]))[:, None, :, None]
    return q


def random_ntu(n, frames=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, frames, 25, 3, generator=g) * 0.3


def two_samples_easy_and_impossible(frames=8):
    q = walking_chain(2, frames)
    q[..., 0, 0] = 0.0
    q[0, :, :, 0, 0] = 0.002  # barely class 0: flips after a step or two
    q[1, :, :, 0, 0] = 1.0  # class 0 by a margin (1 m) no budget of 0.005-m steps here can close
    return q, torch.tensor([0, 0])


# ---- per-sample success and freezing -------------------------------------------------------
def test_easy_sample_stops_early_with_its_own_iteration_count():
    q, y = two_samples_easy_and_impossible()
    r = attack(ThresholdModel(), q, y, CHAIN, method="smart", fps=30, iterations=25)
    assert r.success.tolist() == [True, False]
    assert 0 < r.iterations[0].item() < 25
    assert r.iterations[1].item() == 25
    assert r.labels_after.tolist() == [1, 0]
    assert r.labels_before.tolist() == [0, 0]


@pytest.mark.parametrize("method", ["smart", "l2-acc", "iaa"])
def test_succeeded_sample_does_not_change_after_success(method):
    q, y = two_samples_easy_and_impossible()
    options = {"step_size": 0.004, "epsilon": 0.1} if method == "iaa" else {}
    short = attack(ThresholdModel(), q, y, CHAIN, method=method, fps=30, iterations=10, **options)
    long = attack(ThresholdModel(), q, y, CHAIN, method=method, fps=30, iterations=60, **options)
    assert short.success[0] and long.success[0]
    assert torch.equal(short.adversarial[0], long.adversarial[0])  # bitwise
    assert short.iterations[0] == long.iterations[0]
    # while the impossible sample kept moving
    assert not torch.equal(short.adversarial[1], long.adversarial[1])


@pytest.mark.parametrize("preset", ["balanced", "authors", "paper"])
def test_batched_attack_matches_attacking_each_sample_alone(preset):
    # float64: in float32 the reductions run in another order in a batch, and the per-second
    # acceleration term (×fps², unweighted in `authors`) amplifies that to tens of µm; in
    # float64 any difference left would be a leak between samples.
    q = random_ntu(4, frames=8, seed=3).double()
    model = LinearModel(8).double()
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    together = attack(model, q, y, NTU, fps=30, iterations=30, preset=preset)
    for i in range(4):
        alone = attack(model, q[i:i + 1], y[i:i + 1], NTU, fps=30, iterations=30, preset=preset)
        assert alone.iterations.item() == together.iterations[i].item()
        assert torch.allclose(alone.adversarial[0], together.adversarial[i], atol=1e-9)


def test_perturbation_moves_motion_and_success_matches_recorded_labels():
    q = random_ntu(6, frames=8, seed=1)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, fps=30, iterations=50)
    assert r.success.all()
    assert torch.equal(r.success, r.labels_after != y)
    assert (r.adversarial - q).abs().amax(dim=(1, 2, 3, 4)).gt(0).all()
    # results are what the model says about the returned motions
    logits = model(r.adversarial.permute(0, 4, 2, 3, 1))
    assert torch.equal(logits.argmax(1), r.labels_after)
    assert torch.allclose(r.probs_after, logits.softmax(1), atol=1e-5)


# ---- strategies ------------------------------------------------------------------------------
def test_random_targets_never_the_true_label_and_cover_the_others():
    labels = torch.randint(0, 7, (5000,), generator=torch.Generator().manual_seed(0))
    targets = random_targets(labels, 7, seed=11)
    assert not (targets == labels).any()
    for c in range(7):
        assert set(targets[labels == c].tolist()) == set(range(7)) - {c}
    assert torch.equal(targets, random_targets(labels, 7, seed=11))
    assert not torch.equal(targets, random_targets(labels, 7, seed=12))


def test_specified_attack_reaches_its_targets():
    q = random_ntu(8, frames=8, seed=2)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, strategy="sa", fps=30, iterations=150, seed=5)
    assert not (r.targets == y).any()
    assert r.success.any()
    assert torch.equal(r.success, r.labels_after == r.targets)
    with pytest.raises(ValueError):
        attack(model, q, y, NTU, strategy="sa", targets=y)


def test_abn_success_means_true_label_left_the_top_n():
    q = random_ntu(8, frames=8, seed=4)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, strategy="abn", top_n=3, fps=30, iterations=150)
    assert r.success.any()
    top3 = r.probs_after.topk(3, dim=1).indices
    in_top = (top3 == y[:, None]).any(1)
    assert torch.equal(r.success, ~in_top)
    # harder than AB: every ABN success is also an AB success, not the other way round
    assert (r.labels_after[r.success] != y[r.success]).all()


# ---- masks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["smart", "iaa", "ciasa"])
def test_padded_frames_and_absent_persons_are_untouched(method):
    q = random_ntu(3, frames=10, seed=6)
    q[0, 1] = 0.0  # sample 0 has one person only
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 7:] = False
    q[1, :, 7:] = 0.0  # padding
    model = LinearModel(10)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    options = {"gan_weight": 0.0, "angle_bounds": "none"} if method == "ciasa" else {}
    r = attack(model, q, y, NTU, method=method, fps=30, iterations=15, mask=mask, early_stop=False, **options)
    assert torch.equal(r.adversarial[1, :, 7:], q[1, :, 7:])
    assert torch.equal(r.adversarial[0, 1], q[0, 1])
    assert not torch.equal(r.adversarial[1, :, :7], q[1, :, :7])


# ---- IAA -------------------------------------------------------------------------------------------
def test_iaa_respects_its_linf_budget_and_uses_it():
    q = random_ntu(4, frames=8, seed=7)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, method="iaa", epsilon=0.01, step_size=0.003, fps=30, iterations=20, early_stop=False)
    dev = (r.adversarial - q).abs().amax(dim=(1, 2, 3, 4))
    assert (dev <= 0.01 + 1e-6).all()
    assert (dev >= 0.01 - 1e-6).all()  # 20 steps of 3 mm reach the 1 cm wall


# ---- CIASA -----------------------------------------------------------------------------------------
def test_realignment_restores_every_bone_length_of_the_original():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 2, 5, 25, 3, generator=g, dtype=torch.float64) * 0.3
    moved = ref + torch.randn(ref.shape, generator=g, dtype=torch.float64) * 0.05
    out = realign_bones(moved, ref, NTU)
    assert torch.allclose(NTU.bone_lengths(out), NTU.bone_lengths(ref), atol=1e-12, rtol=0)
    # directions are the perturbed ones, the root stays where the perturbation put it
    assert torch.allclose(bone_directions(out, NTU), bone_directions(moved, NTU), atol=1e-12)
    assert torch.equal(out[..., NTU.root, :], moved[..., NTU.root, :])


def test_joint_angle_projection_moves_violating_bones_into_the_box():
    q = torch.tensor([[0.0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float64)  # 90° bends
    angles = bone_bending_angles(q, CHAIN)
    assert angles[2].item() == pytest.approx(90.0) and angles[3].item() == pytest.approx(90.0)
    bounds = np.array([[np.nan, np.nan], [np.nan, np.nan], [0.0, 45.0], [0.0, 120.0]])
    out = realign_bones(q, q, CHAIN, angle_bounds=bounds)
    new = bone_bending_angles(out, CHAIN)
    assert new[2].item() == pytest.approx(45.0)
    assert new[3].item() == pytest.approx(90.0, abs=1e-6)  # inside its box: unchanged
    assert torch.allclose(CHAIN.bone_lengths(out), CHAIN.bone_lengths(q))
    # a bone parallel to its parent still gets a valid direction when 0° is forbidden
    straight = torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 2, 0], [0, 3, 0]], dtype=torch.float64)
    d = project_bone_angles(bone_directions(straight, CHAIN), CHAIN, [[np.nan] * 2, [np.nan] * 2, [30, 60], [0, 180]])
    assert bone_bending_angles(realign_bones(straight, straight, CHAIN, angle_bounds=[[np.nan] * 2, [np.nan] * 2,
                                                                                          [30, 60], [0, 180]]),
                               CHAIN)[2].item() == pytest.approx(30.0)
    assert torch.allclose(d.norm(dim=-1)[1:], torch.ones(3, dtype=torch.float64))


def test_angle_bounds_from_clean_motions_contain_them():
    q = walking_chain(4)
    q[:, :, :, 3, 0] += 0.3  # bend the last bone
    bounds = bone_angle_bounds_from_motions(q, CHAIN, margin_deg=2.0)
    assert np.isnan(bounds[:2]).all()
    angles = bone_bending_angles(q.double(), CHAIN)[..., 2:].numpy()
    assert (angles >= bounds[2:, 0] - 1e-9).all() and (angles <= bounds[2:, 1] + 1e-9).all()
    assert bounds[3, 0] > 0  # the bent bone's box excludes straight


def test_ciasa_output_keeps_bone_lengths_and_stays_near_budget():
    q = random_ntu(3, frames=8, seed=8)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    r = attack(model, q, y, NTU, method="ciasa", gan_weight=0.0, epsilon=0.01, step_size=0.002,
               iterations=10, early_stop=False, angle_bounds="none")
    assert torch.allclose(NTU.bone_lengths(r.adversarial), NTU.bone_lengths(q), atol=1e-5)
    assert not torch.equal(r.adversarial, q)


@pytest.fixture(scope="module")
def discriminator():
    clean = random_ntu(16, frames=8, seed=9)
    return train_motion_discriminator(clean, NTU, steps=25, seed=0)


def test_gan_term_gradient_reaches_the_motion(discriminator):
    q = random_ntu(2, frames=8, seed=10).requires_grad_(True)
    realism_loss(discriminator, q).sum().backward()
    assert q.grad.abs().sum() > 0


def test_ciasa_gan_weight_changes_the_result(discriminator):
    q = random_ntu(3, frames=8, seed=11)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    common = dict(method="ciasa", discriminator=discriminator, iterations=8, early_stop=False, step_size=0.002,
                  angle_bounds="none")
    off = attack(model, q, y, NTU, gan_weight=0.0, **common)
    on = attack(model, q, y, NTU, gan_weight=5.0, **common)
    assert not torch.allclose(off.adversarial, on.adversarial)
    again = attack(model, q, y, NTU, gan_weight=5.0, **common)
    assert torch.equal(on.adversarial, again.adversarial)


def test_ciasa_trains_its_own_discriminator_on_the_training_motions_given():
    q = random_ntu(2, frames=6, seed=12)
    train = random_ntu(6, frames=6, seed=14)
    model = LinearModel(6)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    y_train = model(train.permute(0, 4, 2, 3, 1)).argmax(1)
    common = dict(method="ciasa", discriminator_steps=3, discriminator_rounds=2, discriminator_attack_steps=2,
                  fps=30, iterations=3, early_stop=False, seed=1, train_motions=train, train_labels=y_train)
    a = attack(model, q, y, NTU, **common)
    b = attack(model, q, y, NTU, **common)
    assert torch.equal(a.adversarial, b.adversarial)
    with pytest.raises(ValueError, match="training motions"):
        attack(model, q, y, NTU, method="ciasa", iterations=3)


# ---- reproducibility, model state, batches -------------------------------------------------------
def test_same_seed_same_output():
    q = random_ntu(5, frames=8, seed=13)
    model = LinearModel(8)
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    a = attack(model, q, y, NTU, strategy="sa", fps=30, iterations=20, seed=3)
    b = attack(model, q, y, NTU, strategy="sa", fps=30, iterations=20, seed=3)
    assert torch.equal(a.adversarial, b.adversarial) and torch.equal(a.targets, b.targets)
    assert torch.equal(a.iterations, b.iterations)


def test_recognizer_is_evaluated_frozen_and_restored():
    class WithDropout(LinearModel):
        def __init__(self):
            super().__init__(8)
            self.drop = nn.Dropout(0.9)

        def forward(self, x):
            return self.drop(super().forward(x))

    model = WithDropout()
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    q = random_ntu(2, frames=8, seed=14)
    y = torch.tensor([0, 1])
    a = attack(model, q, y, NTU, fps=30, iterations=5, early_stop=False)
    b = attack(model, q, y, NTU, fps=30, iterations=5, early_stop=False)
    assert torch.equal(a.adversarial, b.adversarial)  # dropout was off
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())


def test_preprocess_is_applied_and_differentiated():
    q, y = two_samples_easy_and_impossible()
    shift = lambda m: m - 0.001  # noqa: E731 - moves the easy sample right onto the boundary
    r = attack(ThresholdModel(), q, y, CHAIN, fps=30, iterations=25, preprocess=shift)
    plain = attack(ThresholdModel(), q, y, CHAIN, fps=30, iterations=25)
    assert r.iterations[0] <= plain.iterations[0]
    assert r.success[0]


def test_correctly_classified_and_attack_in_batches():
    q = random_ntu(10, frames=6, seed=15)
    model = LinearModel(6)
    preds = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    y = preds.clone()
    y[:3] = (y[:3] + 1) % 6
    ok = correctly_classified(model, q.numpy(), y.numpy(), batch_size=4)
    assert ok.tolist() == [False] * 3 + [True] * 7
    seen = []
    fps = np.linspace(20.0, 80.0, 7)  # one frame rate per clip, sliced with its batch
    # balance_terms=False: with raw term sums the per-clip rates change the result
    result = attack_in_batches(model, q.numpy()[ok.numpy()], y[ok].numpy(), NTU, batch_size=3, fps=fps,
                               preset="balanced", balance_terms=False, iterations=20,
                               on_batch=lambda b, idx, r: seen.append((b, idx.tolist(), len(r.success))),
                               show_progress=False)
    assert seen == [(0, [0, 1, 2], 3), (1, [3, 4, 5], 3), (2, [6], 1)]
    assert result.adversarial.shape == (7, 2, 6, 25, 3)
    whole = attack(model, q[ok], y[ok], NTU, fps=torch.as_tensor(fps), preset="balanced", balance_terms=False, iterations=20)
    assert torch.equal(result.iterations, whole.iterations)
    assert torch.allclose(result.adversarial, whole.adversarial, atol=2e-5)
    shared = attack(model, q[ok], y[ok], NTU, fps=30, preset="balanced", balance_terms=False, iterations=20)
    assert not torch.allclose(shared.adversarial, whole.adversarial, atol=1e-4)  # the rates were used
    assert torch.equal(attack_success(model(result.adversarial.permute(0, 4, 2, 3, 1)), "ab", y[ok]),
                       result.success)


def test_unknown_method_or_option_is_rejected():
    q, y = two_samples_easy_and_impossible()
    with pytest.raises(ValueError, match="ciasa"):
        attack(ThresholdModel(), q, y, CHAIN, method="fgsm")
    with pytest.raises(TypeError):
        attack(ThresholdModel(), q, y, CHAIN, method="iaa", lr=0.1)
    with pytest.raises(ValueError, match="dyn_reduction"):
        attack(ThresholdModel(), q, y, CHAIN, method="smart", dyn_reduction="max")
    with pytest.raises(ValueError, match="time_unit"):
        attack(ThresholdModel(), q, y, CHAIN, method="smart", fps=30, time_unit="minute")
    with pytest.raises(ValueError, match="balance_terms must be true or false"):
        attack(ThresholdModel(), q, y, CHAIN, method="smart", fps=30, balance_terms="false")


@pytest.mark.parametrize("method", ["smart", "l2-acc"])
def test_derivatives_per_second_need_the_frame_rate(method):
    q = random_ntu(3, frames=8, seed=2)
    model = LinearModel(8)  # per-frame weights: the perturbation varies in time, so its derivatives count
    y = model(q.permute(0, 4, 2, 3, 1)).argmax(1)
    with pytest.raises(ValueError, match="frame rate"):
        attack(model, q, y, NTU, method=method, iterations=2, preset="balanced")
    common = dict(method=method, preset="balanced", iterations=8, early_stop=False)
    # the unit matters where the terms' raw gradients are summed ...
    per_frame = attack(model, q, y, NTU, time_unit="frame", balance_terms=False, **common)
    per_second = attack(model, q, y, NTU, fps=30, balance_terms=False, **common)
    assert not torch.allclose(per_frame.adversarial, per_second.adversarial, atol=1e-4)
    # ... and not where each term's gradient is normalised (the default)
    per_frame = attack(model, q, y, NTU, time_unit="frame", **common)
    per_second = attack(model, q, y, NTU, fps=30, **common)
    assert torch.allclose(per_frame.adversarial, per_second.adversarial, atol=1e-4)


@pytest.mark.parametrize("method", ["l2", "l2-bone"])
def test_losses_without_derivatives_do_not_need_the_frame_rate(method):
    q, y = two_samples_easy_and_impossible()
    without = attack(ThresholdModel(), q, y, CHAIN, method=method, iterations=5)
    assert torch.equal(without.adversarial, attack(ThresholdModel(), q, y, CHAIN, method=method, iterations=5,
                                                   fps=30).adversarial)


# ---- margins and a second judge ------------------------------------------------------------
def test_margin_success_by_hand():
    logits = torch.tensor([[2.0, 2.5, 0.0], [2.0, 4.5, 4.0], [0.0, 1.0, 3.0]])
    labels = torch.tensor([0, 0, 0])
    assert attack_success(logits, "ab", labels, margin=0.5).tolist() == [True, True, True]
    assert attack_success(logits, "ab", labels, margin=0.6).tolist() == [False, True, True]
    # ABN (N = 2): the second best other class must lead the true one by the margin.
    assert attack_success(logits, "abn", labels, top_n=2, margin=1.5).tolist() == [False, True, False]
    targets = torch.tensor([1, 1, 2])
    assert attack_success(logits, "sa", labels, targets, margin=0.5).tolist() == [True, True, True]
    assert attack_success(logits, "sa", labels, targets, margin=1.0).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="margin"):
        attack_success(logits, "ab", labels, margin=-1)


def test_margin_keeps_attacking_past_the_boundary():
    q, y = two_samples_easy_and_impossible()
    plain = attack(ThresholdModel(), q[:1], y[:1], CHAIN, method="smart", fps=30, iterations=60)
    confident = attack(ThresholdModel(), q[:1], y[:1], CHAIN, method="smart", fps=30, iterations=60, margin=1.0)
    assert plain.success.item() and confident.success.item()
    assert confident.iterations.item() > plain.iterations.item()
    logits = ThresholdModel()(confident.adversarial.permute(0, 4, 2, 3, 1))
    assert (logits[0, 1] - logits[0, 0]).item() >= 1.0


def test_a_rejected_candidate_is_not_frozen_and_keeps_being_attacked():
    q, y = two_samples_easy_and_impossible()
    calls = []

    def second_judge(motions, rows):
        calls.append(rows.tolist())
        return torch.tensor([len(calls) > 3] * len(rows))  # refuse the first three candidates

    plain = attack(ThresholdModel(), q[:1], y[:1], CHAIN, method="smart", fps=30, iterations=60)
    judged = attack(ThresholdModel(), q[:1], y[:1], CHAIN, method="smart", fps=30, iterations=60,
                    accept=second_judge)
    assert calls[:4] == [[0]] * 4 and len(calls) == 4
    assert judged.success.item() and judged.iterations.item() == plain.iterations.item() + 3


# ---- SMART presets ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["balanced", "paper", "authors"])
@pytest.mark.parametrize("method", ["smart", "l2", "l2-acc", "l2-bone"])
def test_first_update_of_each_preset_stays_within_its_step_bound(preset, method):
    from attacks.core.methods import method_config

    q = random_ntu(3, frames=12, seed=4)
    y = torch.zeros(3, dtype=torch.long)
    config = method_config(method, preset=preset)
    r = attack(LinearModel(12), q, y, NTU, config=config, fps=30, iterations=1, early_stop=False)
    moved = (r.adversarial - q).abs()
    assert moved.max().item() <= config.step_bound() * (1 + 1e-5)
    assert moved.max().item() > 0.1 * config.step_bound()  # and it does move
    if config.update == "adam":  # Adam's first step is ±lr on every coordinate (FGSM-like)
        assert moved.min().item() == pytest.approx(config.lr, rel=1e-3)
    else:  # a plain step moves each frame by at most lr in all
        per_frame = (r.adversarial - q).flatten(3).norm(dim=-1)
        assert per_frame.max().item() <= config.lr * (1 + 1e-5)


def test_presets_set_values_and_explicit_options_win():
    from attacks.core.methods import method_config
    from attacks.core.methods.smart import PRESETS

    authors = method_config("smart", preset="authors")
    assert (authors.update, authors.w, authors.lr, authors.fixed_fps) == ("step", 0.6, 0.01, 30.0)
    assert method_config("smart", preset="authors", w=0.5).w == 0.5
    paper = method_config("l2", preset="paper")
    assert (paper.balance, paper.update, paper.w, paper.lr) == (False, "adam", 0.4, 0.005)
    assert method_config("smart").preset == "authors" and set(PRESETS) == {"balanced", "paper", "authors"}
    with pytest.raises(ValueError, match="preset"):
        method_config("smart", preset="mine")


def test_attack_in_batches_can_hand_batches_over_without_keeping_them():
    """keep_results=False (what generation uses, storing each batch as it comes) gives
    on_batch the same results and keeps none of them."""
    model = LinearModel(8)
    motions = random_ntu(10, frames=8, seed=3)
    labels = model(motions.permute(0, 4, 2, 3, 1)).argmax(1)
    handed = {True: [], False: []}
    kept = {}
    for keep in (True, False):
        kept[keep] = attack_in_batches(model, motions, labels, NTU, batch_size=4, iterations=3,
                                       show_progress=False, keep_results=keep,
                                       on_batch=lambda b, idx, r, keep=keep: handed[keep].append((idx, r)))
    assert kept[False] is None and len(handed[False]) == len(handed[True]) == 3
    for (i1, r1), (i2, r2) in zip(handed[True], handed[False]):
        assert (i1 == i2).all() and torch.equal(r1.adversarial, r2.adversarial) and torch.equal(r1.success, r2.success)
    assert torch.equal(kept[True].adversarial, torch.cat([r.adversarial for _, r in handed[True]]))
