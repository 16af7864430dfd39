"""SMART's gradient balancing: the perceptual term must steer the attack at metre scale."""
import torch

from attacks.methods.smart import _unit_per_frame
from tests.test_methods import NTU, random_ntu


def test_unit_per_frame_normalises_each_frame_and_keeps_zeros():
    g = torch.randn(2, 1, 4, 25, 3)
    g[1, 0, 2] = 0
    u = _unit_per_frame(g)
    norms = u.flatten(3).norm(dim=-1)
    assert torch.allclose(norms[0], torch.ones_like(norms[0]))
    assert norms[1, 0, 2] == 0 and torch.allclose(norms[1, 0, [0, 1, 3]], torch.ones(3))
    assert torch.allclose(u[0, 0, 1] * g[0, 0, 1].norm(), g[0, 0, 1])


def test_balanced_gradient_mixes_unit_gradients_with_weight_w():
    from attacks.losses import perceptual_loss
    from attacks.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(3, frames=8)[:, :1]
    x = (q + 0.01 * torch.randn(q.shape, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    idx = torch.arange(3)
    active = torch.tensor([True, True, False])
    lc = (x ** 3).sum(dim=(1, 2, 3, 4))  # any differentiable per-sample classification loss
    method = SmartMethod(SmartConfig(w=0.3), q, NTU, None, fps=30)
    got = method.gradient(x, idx, lc, active)

    g_c = 3 * x.detach() ** 2
    xp = x.detach().clone().requires_grad_(True)
    g_p, = torch.autograd.grad(perceptual_loss(xp, q, NTU, kind="smart", fps=30).sum(), xp)
    unit = lambda g: g / g.flatten(3).norm(dim=-1)[..., None, None]  # noqa: E731
    expected = 0.3 * unit(g_c) + 0.7 * unit(g_p)
    assert torch.allclose(got[:2], expected[:2], atol=1e-5)
    assert torch.all(got[2] == 0)  # an inactive sample gets no gradient


def test_unbalanced_gradient_is_the_plain_weighted_sum():
    from attacks.losses import perceptual_loss
    from attacks.methods.smart import SmartConfig, SmartMethod

    q = random_ntu(2, frames=8)[:, :1]
    x = (q + 0.01).requires_grad_(True)
    lc = (x ** 2).sum(dim=(1, 2, 3, 4))
    got = SmartMethod(SmartConfig(w=0.4, balance=False), q, NTU, None, fps=30).gradient(
        x, torch.arange(2), lc, torch.tensor([True, True]))
    xp = x.detach().clone().requires_grad_(True)
    total = 0.4 * (xp ** 2).sum() + 0.6 * perceptual_loss(xp, q, NTU, kind="smart", fps=30).sum()
    expected, = torch.autograd.grad(total, xp)
    assert torch.allclose(got, expected, atol=1e-6)
