"""Perceptual and classification losses, success criteria and perceptual metrics against hand-worked numbers."""
import math

import numpy as np
import pytest
import torch

from attacks.core.methods import metrics
from attacks.core.methods.losses import (
    attack_success, classification_loss, derivative, perceptual_loss, total_loss,
)
from attacks.core.skeletons import Skeleton

# A three-joint chain: 0 (root, spinal) -> 1 -> 2, standing along +y, one metre per bone.
CHAIN = Skeleton(name="chain3", joints=("root", "mid", "tip"), parents=(-1, 0, 1), spine=(0,))
G_SPINE, G_OTHER = 0.04, 0.02


def chain_motion(frames: int) -> torch.Tensor:
    """(1, 1, T, 3, 3) float64: the chain at rest in every frame."""
    pose = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    return pose.expand(1, 1, frames, 3, 3).clone()


def tip_pushed(frames: int = 3):
    """Original and a copy whose tip moves 0.3 m along z in frame 1 only."""
    q = chain_motion(frames)
    qa = q.clone()
    qa[0, 0, 1, 2, 2] += 0.3
    return q, qa


# ---- derivative -------------------------------------------------------------------------
def test_derivative_forward_differences_along_time():
    t = torch.arange(5, dtype=torch.float64)
    q = (t ** 2).reshape(1, 1, 5, 1, 1).expand(1, 1, 5, 1, 3)
    assert torch.equal(derivative(q, 0), q)
    assert derivative(q, 1)[0, 0, :, 0, 0].tolist() == [1.0, 3.0, 5.0, 7.0]  # (t+1)² − t²
    assert derivative(q, 2)[0, 0, :, 0, 0].tolist() == [2.0, 2.0, 2.0]
    assert derivative(q, 3)[0, 0, :, 0, 0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        derivative(q, -1)


# ---- perceptual losses --------------------------------------------------------------------
def test_l2_weights_each_joint_difference_by_gamma_then_squares():
    q = chain_motion(2)
    qa = q.clone()
    qa[0, 0, 0, 1, 0] += 0.1  # non-spinal joint, frame 0
    qa[0, 0, 1, 0, 1] += 0.2  # spinal joint, frame 1
    frame0 = (G_OTHER * 0.1) ** 2
    frame1 = (G_SPINE * 0.2) ** 2
    expected = (frame0 + frame1) / 2  # mean over the two frames
    got = perceptual_loss(qa, q, CHAIN, kind="l2")
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_dyn_reduction_sum_takes_the_norm_over_all_frames():
    q, qa = tip_pushed()  # tip moved 0.3 m in frame 1 of 3
    pos = (G_OTHER * 0.3) ** 2  # summed over frames: no 1/3
    acc = (G_OTHER * 0.6) ** 2
    stretched = math.sqrt(1.0 + 0.3 ** 2)
    bone = (stretched - 1.0) ** 2 / 3  # l_bl keeps its 1/M
    assert perceptual_loss(qa, q, CHAIN, kind="l2", dyn_reduction="sum").item() == pytest.approx(pos, rel=1e-12)
    smart = 0.3 * (0.6 * pos + 0.4 * acc) + 0.7 * bone
    got = perceptual_loss(qa, q, CHAIN, kind="smart", dyn_reduction="sum").item()
    assert got == pytest.approx(smart, rel=1e-9)
    mask = torch.tensor([[True, True, False]])  # a padded last frame adds nothing to the sum
    qa_padded = qa.clone()
    qa_padded[0, 0, 2] += 5.0
    got = perceptual_loss(qa_padded, q, CHAIN, kind="l2", dyn_reduction="sum", mask=mask).item()
    assert got == pytest.approx(pos, rel=1e-12)
    with pytest.raises(ValueError, match="dyn_reduction"):
        perceptual_loss(qa, q, CHAIN, kind="l2", dyn_reduction="max")


def test_gamma_on_squared_follows_the_released_code_variant():
    q, qa = tip_pushed()
    expected = G_OTHER * 0.3 ** 2 / 3
    got = perceptual_loss(qa, q, CHAIN, kind="l2", gamma_on_squared=True)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_l2_acc_adds_the_second_difference_term():
    q, qa = tip_pushed()
    pos = (G_OTHER * 0.3) ** 2 / 3  # one displaced joint-frame among three frames
    acc = (G_OTHER * (0.0 - 2 * 0.3 + 0.0)) ** 2 / 1  # one second-difference frame
    expected = 0.6 * pos + 0.4 * acc
    assert perceptual_loss(qa, q, CHAIN, kind="l2-acc").item() == pytest.approx(expected, rel=1e-12)
    heavier = 0.2 * pos + 0.8 * acc
    assert perceptual_loss(qa, q, CHAIN, kind="l2-acc", acc_weight=0.8).item() == pytest.approx(heavier, rel=1e-12)


def test_l2_bone_and_smart_use_framewise_bone_lengths():
    q, qa = tip_pushed()
    pos = (G_OTHER * 0.3) ** 2 / 3
    acc = (G_OTHER * 0.6) ** 2
    stretched = math.sqrt(1.0 + 0.3 ** 2)  # tip bone becomes (0, 1, 0.3)
    bone = (stretched - 1.0) ** 2 / 3  # only frame 1 of 3 changes
    assert perceptual_loss(qa, q, CHAIN, kind="l2-bone").item() == pytest.approx(0.3 * pos + 0.7 * bone, rel=1e-9)
    smart = 0.3 * (0.6 * pos + 0.4 * acc) + 0.7 * bone
    assert perceptual_loss(qa, q, CHAIN, kind="smart").item() == pytest.approx(smart, rel=1e-9)
    # β is configurable up to the 4th derivative: velocity only.
    vel = (G_OTHER * 0.3) ** 2 * 2 / 2  # both first differences see ±0.3
    got = perceptual_loss(qa, q, CHAIN, kind="smart", alpha=1.0, betas=(0, 1, 0, 0, 0)).item()
    assert got == pytest.approx(vel, rel=1e-9)


def test_fps_turns_the_derivatives_into_rates_per_second():
    q, qa = tip_pushed()  # the tip's second difference is −0.6 m/frame² in the one middle frame
    fps = 30.0
    pos = (G_OTHER * 0.3) ** 2 / 3  # the position term has no time unit
    acc = (G_OTHER * 0.6 * fps ** 2) ** 2  # −0.6 m/frame² = −540 m/s²
    stretched = math.sqrt(1.0 + 0.3 ** 2)
    bone = (stretched - 1.0) ** 2 / 3
    smart = 0.3 * (0.6 * pos + 0.4 * acc) + 0.7 * bone
    assert perceptual_loss(qa, q, CHAIN, kind="smart", fps=fps).item() == pytest.approx(smart, rel=1e-9)
    assert perceptual_loss(qa, q, CHAIN, kind="l2-acc", fps=fps).item() == pytest.approx(
        0.6 * pos + 0.4 * acc, rel=1e-9)
    vel = (G_OTHER * 0.3 * fps) ** 2  # both first differences see ±0.3 m/frame = ±9 m/s
    got = perceptual_loss(qa, q, CHAIN, kind="smart", alpha=1.0, betas=(0, 1, 0, 0, 0), fps=fps).item()
    assert got == pytest.approx(vel, rel=1e-9)
    # l2 and l2-bone do not differentiate in time: the frame rate changes nothing
    for kind in ("l2", "l2-bone"):
        assert perceptual_loss(qa, q, CHAIN, kind=kind, fps=fps).item() == perceptual_loss(qa, q, CHAIN, kind=kind).item()


def test_fps_is_one_per_sample_or_shared():
    q, qa = tip_pushed()
    both_q, both_a = torch.cat([q, q]), torch.cat([qa, qa])
    per_sample = perceptual_loss(both_a, both_q, CHAIN, kind="l2-acc", fps=torch.tensor([30.0, 60.0]))
    for i, fps in enumerate((30.0, 60.0)):
        assert per_sample[i].item() == pytest.approx(perceptual_loss(qa, q, CHAIN, kind="l2-acc", fps=fps).item(),
                                                     rel=1e-6)
    with pytest.raises(ValueError, match="one per sample"):
        perceptual_loss(both_a, both_q, CHAIN, kind="smart", fps=torch.tensor([30.0, 60.0, 90.0]))
    with pytest.raises(ValueError, match="positive"):
        perceptual_loss(qa, q, CHAIN, kind="smart", fps=0.0)


def test_per_second_dynamics_do_not_depend_on_the_sampling_rate():
    """The same smooth perturbation sampled at 30 and at 60 fps: per second, l_dyn's
    acceleration term agrees; per frame, it shrinks 16-fold at the higher rate."""
    def sampled(fps):
        t = torch.arange(0, 2.0, 1.0 / fps, dtype=torch.float64)
        q = chain_motion(len(t))
        qa = q.clone()
        qa[0, 0, :, 2, 2] += 0.05 * torch.sin(2 * math.pi * 0.5 * t)  # tip sways 5 cm at 0.5 Hz
        return q, qa

    acc_only = dict(kind="smart", alpha=1.0, betas=(0, 0, 1, 0, 0))
    per_second = [perceptual_loss(*sampled(f)[::-1], CHAIN, fps=f, **acc_only).item() for f in (30, 60)]
    per_frame = [perceptual_loss(*sampled(f)[::-1], CHAIN, **acc_only).item() for f in (30, 60)]
    assert per_second[1] == pytest.approx(per_second[0], rel=0.05)
    assert per_frame[0] / per_frame[1] == pytest.approx(16, rel=0.05)


def test_identical_motions_cost_nothing_and_samples_are_independent():
    q, qa = tip_pushed()
    both_q = torch.cat([q, q])
    both_a = torch.cat([q, qa])
    losses = perceptual_loss(both_a, both_q, CHAIN, kind="smart")
    assert losses.shape == (2,)
    assert losses[0].item() == 0.0
    assert losses[1].item() == pytest.approx(perceptual_loss(qa, q, CHAIN).item(), rel=1e-12)


def test_padded_frames_do_not_count():
    q, qa = tip_pushed(frames=4)
    mask = torch.tensor([[True, True, True, False]])
    qa_padded = qa.clone()
    qa_padded[0, 0, 3] += 5.0  # garbage in the padded frame
    q3, qa3 = tip_pushed(frames=3)
    for kind in ("smart", "l2", "l2-acc", "l2-bone"):
        got = perceptual_loss(qa_padded, q, CHAIN, kind=kind, mask=mask).item()
        assert got == pytest.approx(perceptual_loss(qa3, q3, CHAIN, kind=kind).item(), rel=1e-9), kind


def test_bone_term_gradient_is_finite_for_zero_length_bones():
    q = torch.zeros(1, 1, 3, 3, 3, dtype=torch.float64)
    qa = q.clone().requires_grad_(True)
    perceptual_loss(qa, q, CHAIN, kind="smart").sum().backward()
    assert torch.isfinite(qa.grad).all()


def test_unknown_kind_is_rejected():
    q = chain_motion(2)
    with pytest.raises(ValueError, match="l2-bone"):
        perceptual_loss(q, q, CHAIN, kind="l1")


# ---- classification losses and success --------------------------------------------------
def test_classification_losses_match_hand_values():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    z = math.exp(2) + 2
    ce0 = math.log(z) - 2  # −log softmax[0] for [2, 0, 0]
    ce1 = math.log(3)
    ab = classification_loss(logits, "ab", labels)
    assert ab.tolist() == pytest.approx([-ce0, -ce1], rel=1e-12)
    p = [math.exp(2) / z, 1 / z, 1 / z]
    entropy0 = -sum(pi * math.log(pi) for pi in p)
    abn = classification_loss(logits, "abn")
    assert abn.tolist() == pytest.approx([-entropy0, -math.log(3)], rel=1e-12)
    sa = classification_loss(logits, "sa", labels, targets=torch.tensor([1, 2]))
    assert sa.tolist() == pytest.approx([math.log(z), math.log(3)], rel=1e-12)
    assert total_loss(torch.tensor([1.0]), torch.tensor([2.0]), w=0.4).item() == pytest.approx(0.4 + 1.2)
    with pytest.raises(ValueError):
        classification_loss(logits, "sa", labels)
    with pytest.raises(ValueError):
        classification_loss(logits, "xx", labels)


def test_success_criteria_per_sample():
    logits = torch.tensor([
        [5.0, 4.0, 3.0, 2.0, 1.0],  # label 0 is top-1
        [5.0, 4.0, 3.0, 2.0, 1.0],  # label 2 is third
        [5.0, 4.0, 3.0, 2.0, 1.0],  # label 3 is fourth
    ])
    labels = torch.tensor([0, 2, 3])
    assert attack_success(logits, "ab", labels).tolist() == [False, True, True]
    assert attack_success(logits, "abn", labels, top_n=3).tolist() == [False, False, True]
    assert attack_success(logits, "abn", labels, top_n=2).tolist() == [False, True, True]
    assert attack_success(logits, "sa", labels, targets=torch.tensor([0, 1, 0])).tolist() == [True, False, True]


# ---- metrics ----------------------------------------------------------------------------------
def test_perceptual_metrics_hand_values():
    q, qa = tip_pushed()
    q2 = torch.cat([q, q]).numpy()
    qa2 = torch.cat([qa, q]).numpy()
    m = metrics.perceptual_metrics(q2, qa2, CHAIN, fps=30)
    # one of 3 frames × 3 joints moved by 0.3
    assert m["mean_displacement"].tolist() == pytest.approx([0.3 / 9, 0.0])
    assert m["max_displacement"].tolist() == pytest.approx([0.3, 0.0])
    assert m["bone_length_error"].tolist() == pytest.approx([(math.sqrt(1.09) - 1) / 6, 0.0])
    # velocity: 2 difference frames × 3 joints, tip sees +0.3 then −0.3; ×30 for m/s
    assert m["velocity_deviation"].tolist() == pytest.approx([0.6 / 6 * 30, 0.0])
    assert m["acceleration_deviation"].tolist() == pytest.approx([0.6 / 3 * 30 ** 2, 0.0])
    assert np.isfinite(m["jerk_deviation"]).all()  # no third difference in 3 frames: 0 by convention
    per_frame = metrics.derivative_deviation(q2, qa2, 1)
    assert per_frame.tolist() == pytest.approx([0.6 / 6, 0.0])


def test_metrics_ignore_padded_frames_and_absent_persons():
    q, qa = tip_pushed(frames=4)
    mask = np.array([[True, True, True, False]])
    qa = qa.clone()
    qa[0, 0, 3] += 1.0
    q2 = torch.cat([q, torch.zeros_like(q)], dim=1)  # second person absent
    qa2 = torch.cat([qa, torch.zeros_like(qa)], dim=1)
    q3, qa3 = tip_pushed(frames=3)
    assert metrics.mean_joint_displacement(q2, qa2, mask)[0] == pytest.approx(
        metrics.mean_joint_displacement(q3, qa3)[0])
    assert metrics.max_joint_displacement(q2, qa2, mask)[0] == pytest.approx(0.3)
    assert metrics.derivative_deviation(q2, qa2, 2, mask)[0] == pytest.approx(0.6 / 3)


def test_success_rate_counts_samples():
    success = np.array([True, False, False, True, True])
    assert metrics.success_rate(success) == pytest.approx(3 / 5)
    assert metrics.success_rate(success, mask=[True, True, False, False, False]) == pytest.approx(1 / 2)
    assert math.isnan(metrics.success_rate(np.zeros(0, bool)))
    assert metrics.success_rate_by_class(success, [0, 0, 1, 1, 1]) == pytest.approx({0: 0.5, 1: 2 / 3})
