"""The motion discriminator behind CIASA's GAN regulariser.

CIASA (Liu, Akhtar and Mian, 2019) keeps adversarial motions plausible with a
discriminator that tells real motions from perturbed ones; the attack adds
``gan_weight · (−log D(features(q̂)))`` to its loss. The features are differentiable
functions of the joint positions, so the regulariser's gradient reaches the motion
(public ports often detach it, which silently turns the term into a constant).

Features per frame: the unit direction of every bone (pose, invariant to translation
and body size) and every joint's velocity (forward difference, metres per frame, last
frame repeated), standardised with statistics stored in the module at training time.
The network is a small temporal convolution with masked mean pooling over time.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def motion_features(motions: torch.Tensor, skeleton) -> torch.Tensor:
    """(N, M, T, V, 3) -> (N, F, T) with F = M·3·(B + V): bone directions and joint velocities."""
    n, m, t, v, _ = motions.shape
    vec = skeleton.bone_vectors(motions)
    dirs = vec / torch.sqrt(vec.square().sum(-1, keepdim=True) + 1e-8)  # smooth at zero length
    vel = torch.diff(motions, dim=2)
    vel = torch.cat([vel, vel[:, :, -1:]], dim=2) if t > 1 else torch.zeros_like(motions)
    feats = torch.cat([dirs, vel], dim=3)  # (N, M, T, B+V, 3)
    return feats.permute(0, 1, 3, 4, 2).reshape(n, -1, t)


class MotionDiscriminator(nn.Module):
    """D(q) -> logit that q is a real (unperturbed) motion."""

    def __init__(self, skeleton, num_persons: int, hidden: int = 64):
        super().__init__()
        self.skeleton = skeleton
        in_ch = num_persons * 3 * (skeleton.num_bones + skeleton.num_joints)
        self.register_buffer("feature_mean", torch.zeros(in_ch, 1))
        self.register_buffer("feature_std", torch.ones(in_ch, 1))
        self.net = nn.Sequential(
            nn.Conv1d(in_ch, hidden, 5, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(hidden, 1)

    def forward(self, motions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        motions = motions.to(self.feature_mean.dtype)  # differentiable: a float64 attack works with a float32 D
        f = (motion_features(motions, self.skeleton) - self.feature_mean) / self.feature_std
        h = self.net(f)  # (N, H, T)
        if mask is None:
            pooled = h.mean(dim=2)
        else:
            w = mask.to(h.dtype)[:, None, :]
            pooled = (h * w).sum(2) / w.sum(2).clamp_min(1.0)
        return self.head(pooled).squeeze(1)


def realism_loss(discriminator: MotionDiscriminator, motions, mask=None) -> torch.Tensor:
    """−log D(q) per sample (N,), differentiable with respect to the motions."""
    return F.softplus(-discriminator(motions, mask))


def train_motion_discriminator(
    clean_motions,
    skeleton,
    steps: int = 200,
    seed: int = 0,
    noise_scale: float = 0.01,
    batch_size: int = 32,
    lr: float = 1e-3,
    hidden: int = 64,
    mask=None,
) -> MotionDiscriminator:
    """Pre-train D on clean clips (real) against the same clips with jitter (fake).

    Fakes add uniform per-coordinate noise of up to `noise_scale` metres, the signature of
    sign-gradient perturbations. Training is seeded and leaves the global RNG untouched;
    it runs on the device of `clean_motions` (a tensor) or the CPU.
    """
    q = torch.as_tensor(clean_motions).float() if not torch.is_tensor(clean_motions) else clean_motions.detach().float()
    mask_t = None if mask is None else torch.as_tensor(mask).bool().to(q.device)
    n = q.shape[0]
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        disc = MotionDiscriminator(skeleton, q.shape[1], hidden=hidden).to(q.device)
    with torch.no_grad():
        f = motion_features(q[: min(n, 512)], skeleton)  # (n, F, T)
        if mask_t is not None:
            w = mask_t[: min(n, 512)].to(f.dtype)[:, None, :]
            mean = (f * w).sum((0, 2)) / w.sum((0, 2)).clamp_min(1.0)
            var = ((f - mean[None, :, None]).square() * w).sum((0, 2)) / w.sum((0, 2)).clamp_min(1.0)
        else:
            mean, var = f.mean(dim=(0, 2)), f.var(dim=(0, 2), unbiased=False)
        disc.feature_mean.copy_(mean[:, None])
        disc.feature_std.copy_(var.sqrt().clamp_min(1e-3)[:, None])
    opt = discriminator_optimizer(disc, lr)
    disc.train()
    for _ in range(steps):
        pick = torch.randint(0, n, (min(batch_size, n),), generator=g).to(q.device)
        real = q[pick]
        noise = (torch.rand(real.shape, generator=g) * 2 - 1).to(q.device) * noise_scale
        present = real.ne(0).flatten(2).any(dim=2)[:, :, None, None, None]
        fit_discriminator_step(disc, opt, real, real + noise * present,
                               None if mask_t is None else mask_t[pick])
    disc.eval()
    return disc


def discriminator_optimizer(disc: MotionDiscriminator, lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))


def fit_discriminator_step(disc, opt, real, fake, mask=None, fake_mask=None) -> float:
    """One step of D on real (label 1) against fake (label 0) motions; returns the loss."""
    disc.train()
    for p in disc.parameters():
        p.requires_grad_(True)
    logits = torch.cat([disc(real, mask), disc(fake.detach(), mask if fake_mask is None else fake_mask)])
    target = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(logits.device)
    loss = F.binary_cross_entropy_with_logits(logits, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_discriminator_against_attack(
    train_motions,
    skeleton,
    perturb,
    *,
    warmup_steps: int = 200,
    rounds: int = 8,
    steps_per_round: int = 5,
    batch_size: int = 32,
    seed: int = 0,
    lr: float = 1e-3,
    hidden: int = 64,
):
    """CIASA's discriminator, trained on clean *training* motions only, alternately with the attack.

    After a warm-up against jitter (`train_motion_discriminator`), each round draws a batch
    of training motions, lets `perturb(motions, positions, disc)` attack them with the
    current D (the attack's own perturbations: CIASA steps, with its GAN term), then
    updates D on another draw of clean training motions (real) against those perturbed
    ones (fake). The clips being attacked later never enter. Returns (D, positions): the
    positions in `train_motions` D has seen (clean or perturbed), for the record.
    """
    given = torch.as_tensor(train_motions).detach()
    q = given.float()
    n = q.shape[0]
    disc = train_motion_discriminator(q, skeleton, steps=warmup_steps, seed=seed, batch_size=batch_size, lr=lr,
                                      hidden=hidden)
    seen = set(range(min(n, 512)))  # the feature statistics
    opt = discriminator_optimizer(disc, lr)
    g = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
    for _ in range(rounds):
        pick = torch.randperm(n, generator=g)[: min(batch_size, n)].sort().values
        disc.eval()
        fake = perturb(given[pick.to(given.device)], pick.numpy(), disc).detach().float().to(q.device)
        for _ in range(steps_per_round):
            real_pick = torch.randint(0, n, (len(pick),), generator=g)
            fit_discriminator_step(disc, opt, q[real_pick.to(q.device)], fake)
            seen.update(int(i) for i in real_pick)
        seen.update(int(i) for i in pick)
    disc.eval()
    for p in disc.parameters():
        p.requires_grad_(False)
    return disc, sorted(seen)
