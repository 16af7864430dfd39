"""SMART's gradient balancing: the perceptual term must steer the attack at metre scale."""
import pytest
import torch

from attacks.core.methods.smart import _unit_per_frame
from tests.test_methods import NTU, random_ntu


def test_unit_per_frame_normalises_each_frame_and_keeps_zeros():
    g = torch.randn(2, 1, 4, 25, 3)
    g[1, 0, 2] = 0
    u = _unit_per_frame(g)
    norms = u.flatten(3).norm(dim=-1)
    assert torch.allclose(norms[0], torch.ones_like(norms[0]))
    assert norms[1, 0, 2] == 0 and torch.allclose(norms[1, 0, [0, 1, 3]], torch.ones(3))
    assert torch.allclose(u[0, 0, 1] * g[0, 0, 1].norm(), g[0, 0, 1])


def test_unit_per_frame_floor_keeps_flat_frames_small():
    g = torch.zeros(2, 1, 3, 25, 3)
    g[0, 0, 0, 0, 0] = 2.0  # a real gradient
    g[0, 0, 1, 0, 0] = 1e-9  # rounding noise where the term is flat
    g[0, 0, 2, 0, 0] = 0.5  # small but real: above the floor, so it still gets unit norm
    g[1, 0, 1, 0, 0] = 1e-9  # another sample's scale does not matter
    u = _unit_per_frame(g, floor=1e-3)
    assert u[0, 0, 0].norm() == pytest.approx(1.0) and u[0, 0, 2].norm() == pytest.approx(1.0)
    assert u[0, 0, 1].norm() == pytest.approx(1e-9 / 2e-3)
    assert u[1, 0, 1].norm() == pytest.approx(1.0)
    assert _unit_per_frame(g)[0, 0, 1].norm() == pytest.approx(1.0)  # without a floor noise becomes a unit push


def test_balanced_gradient_mixes_unit_gradients_with_weight_w():
    from attacks.core.methods.losses import perceptual_loss
    from attacks.core.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(3, frames=8)[:, :1]
    x = (q + 0.01 * torch.randn(q.shape, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    idx = torch.arange(3)
    active = torch.tensor([True, True, False])
    lc = (x ** 3).sum(dim=(1, 2, 3, 4))  # any differentiable per-sample classification loss
    method = SmartMethod(SmartConfig(w=0.3, balance_terms=False), q, NTU, None, fps=30)
    got = method.gradient(x, idx, lc, active)

    g_c = 3 * x.detach() ** 2
    xp = x.detach().clone().requires_grad_(True)
    g_p, = torch.autograd.grad(perceptual_loss(xp, q, NTU, kind="smart", fps=30).sum(), xp)
    unit = lambda g: g / g.flatten(3).norm(dim=-1)[..., None, None]  # noqa: E731
    expected = 0.3 * unit(g_c) + 0.7 * unit(g_p)
    assert torch.allclose(got[:2], expected[:2], atol=1e-5)
    assert torch.all(got[2] == 0)  # an inactive sample gets no gradient


@pytest.mark.parametrize("kind", ["smart", "l2-acc", "l2-bone"])
def test_balanced_terms_mix_unit_gradients_with_their_coefficients(kind):
    """Each term of Lp gets a unit gradient per frame, weighted by its coefficient (SMART:
    α·β₀, α·β₂, 1 − α), so α and β weigh directions whatever the terms' units."""
    from attacks.core.methods.losses import bone_length_term, dynamics_term, joint_weights
    from attacks.core.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(2, frames=8, seed=4)[:, :1]
    x = (q + 0.01 * torch.randn(q.shape, generator=torch.Generator().manual_seed(2))).requires_grad_(True)
    lc = (x ** 3).sum(dim=(1, 2, 3, 4))
    method = SmartMethod(SmartConfig(perceptual=kind, w=0.4), q, NTU, None, fps=torch.tensor([30.0, 120.0]))
    got = method.gradient(x, torch.arange(2), lc, torch.tensor([True, True]))

    gamma = joint_weights(NTU, 0.04, 0.02, q)
    fps = torch.tensor([30.0, 120.0])
    pos = lambda xp: dynamics_term(xp, q, 0, gamma)  # noqa: E731
    acc = lambda xp: dynamics_term(xp, q, 2, gamma, fps=fps)  # noqa: E731
    bone = lambda xp: bone_length_term(xp, q, NTU)  # noqa: E731
    terms = {"smart": [(0.3 * 0.6, pos), (0.3 * 0.4, acc), (0.7, bone)],
             "l2-acc": [(0.6, pos), (0.4, acc)], "l2-bone": [(0.3, pos), (0.7, bone)]}[kind]
    unit = lambda g: g / g.flatten(3).norm(dim=-1)[..., None, None]  # noqa: E731
    g_p = 0
    for c, f in terms:
        xp = x.detach().clone().requires_grad_(True)
        g, = torch.autograd.grad(f(xp).sum(), xp)
        g_p = g_p + c * unit(g)
    expected = 0.4 * unit(3 * x.detach() ** 2) + 0.6 * unit(g_p)
    assert torch.allclose(got, expected, atol=1e-5)


def test_balanced_terms_do_not_depend_on_the_time_unit():
    """Scaling a term (per second instead of per frame) leaves its unit gradient alone."""
    from attacks.core.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(2, frames=8, seed=6)[:, :1]
    x = (q + 0.01 * torch.randn(q.shape, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    def lc():  # a fresh graph per call, as each attack iteration has (the engine keeps none)
        return (x ** 3).sum(dim=(1, 2, 3, 4))

    active = torch.tensor([True, True])
    per_second = SmartMethod(SmartConfig(), q, NTU, None, fps=60).gradient(x, torch.arange(2), lc(), active)
    per_frame = SmartMethod(SmartConfig(time_unit="frame"), q, NTU, None).gradient(x, torch.arange(2), lc(), active)
    assert torch.allclose(per_second, per_frame, atol=1e-5)
    unbalanced = SmartMethod(SmartConfig(balance_terms=False), q, NTU, None, fps=60).gradient(
        x, torch.arange(2), lc(), active)
    assert not torch.allclose(unbalanced, per_second, atol=1e-3)


def test_unbalanced_gradient_is_the_plain_weighted_sum():
    from attacks.core.methods.losses import perceptual_loss
    from attacks.core.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(2, frames=8)[:, :1]
    x = (q + 0.01).requires_grad_(True)
    lc = (x ** 2).sum(dim=(1, 2, 3, 4))
    got = SmartMethod(SmartConfig(w=0.4, balance=False), q, NTU, None, fps=30).gradient(
        x, torch.arange(2), lc, torch.tensor([True, True]))
    xp = x.detach().clone().requires_grad_(True)
    total = 0.4 * (xp ** 2).sum() + 0.6 * perceptual_loss(xp, q, NTU, kind="smart", fps=30).sum()
    expected, = torch.autograd.grad(total, xp)
    assert torch.allclose(got, expected, atol=1e-6)
