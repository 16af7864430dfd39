"""The attack objective: perceptual losses, classification losses and success criteria.

SMART (Wang et al., CVPR 2021) minimises, per sample,

    L = w·Lc + (1 − w)·Lp,   w = 0.4,

and every function here returns one value per sample, shape (N,), so that a batched
attack can judge (and stop) each sample on its own. Motions are (N, M, T, V, 3) tensors
in metres; an optional frame mask (N, T) marks the real frames of padded clips.

Definitions, made precise where the papers leave room (all sums/means are per sample):

- ``derivative(q, n)`` is the n-th forward difference along time, in metres per
  frameⁿ. Inside the losses, with the clips' frame rate ``fps`` given, the n-th
  difference is multiplied by fpsⁿ: a derivative in metres per secondⁿ, as "derivative"
  means and as the authors' released code computes it (``deltaT = 1/30``), so the loss
  does not depend on the rate a motion happens to be sampled at. Without ``fps`` the
  derivatives stay per frame (``SmartConfig(time_unit="frame")``). The unit sets how
  large the acceleration term is against l_bl (30⁴ apart at 30 fps), which is why the
  attack balances the terms' gradients (`attacks.core.methods.smart`) rather than their values.
- ``l_dyn = Σ_n β_n · mean_t Σ_{m,v} ‖γ_v · (qⁿ − q̂ⁿ)_{m,t,v}‖²``: the arXiv version of
  the paper writes ``‖γ ⊙ (qⁿ − q̂ⁿ)‖²``, so γ multiplies the difference *before* it is
  squared (the joint weights enter squared). ``gamma_on_squared=True`` instead weights
  the squared difference by γ, as the released code does for the position term. The sum
  runs over persons, joints and xyz; frames are *averaged* (over the frames where the
  n-th difference is defined and every frame it touches is real), like l_bl's explicit
  1/M, so the loss does not grow with clip length. Read literally, the paper's formula
  sums over frames as well (only l_bl carries 1/M): ``dyn_reduction="sum"`` does that.
- ``l_bl = mean_t Σ_{m,b} (Bl(q)_{m,t,b} − Bl(q̂)_{m,t,b})²`` (paper Eq. 4), bone lengths
  per frame from the skeleton's parent list.
- ``smart = α·l_dyn + (1 − α)·l_bl`` with α = 0.3, β = (0.6, 0, 0.4, 0, 0), γ = 0.04 on the
  skeleton's spinal joints and 0.02 elsewhere.
- Ablations (paper section 4.5), each SMART with an ingredient removed, using the same
  γ-weighted terms so that their scales are comparable:
  ``l2`` = position term only (β = (1, 0, ...), no bone term);
  ``l2-acc`` = (1 − acc_weight)·position + acc_weight·acceleration, acc_weight = 0.4
  (i.e. SMART's l_dyn on its own);
  ``l2-bone`` = (1 − bone_weight)·position + bone_weight·l_bl, bone_weight = 0.7
  (i.e. SMART with β = (1, 0, ...)).
- Classification: AB ``−CE(logits, y)``; ABN ``−Entropy(softmax(logits))``; SA
  ``CE(logits, target)``. Success: AB argmax ≠ y; ABN y not in the top N; SA argmax = target.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PERCEPTUAL_KINDS = ("smart", "l2", "l2-acc", "l2-bone")
DYN_REDUCTIONS = ("sum", "mean")  # over frames, in l_dyn
STRATEGIES = ("ab", "abn", "sa")
TIME_DIM = 2  # motions are (N, M, T, V, 3)


# ---- perceptual losses ---------------------------------------------------------------
def perceptual_loss(q_adv: torch.Tensor, q: torch.Tensor, skeleton, kind: str = "smart", **weights) -> torch.Tensor:
    """Perceptual distance between adversarial and original motions (N, M, T, V, 3) -> (N,):
    the weighted sum of `perceptual_terms` (same keyword arguments)."""
    terms = perceptual_terms(q_adv, q, skeleton, kind, **weights)
    return sum(c * t for c, t in terms) if terms else q.new_zeros(q.shape[0])


def perceptual_terms(
    q_adv: torch.Tensor,
    q: torch.Tensor,
    skeleton,
    kind: str = "smart",
    alpha: float = 0.3,
    betas=(0.6, 0.0, 0.4, 0.0, 0.0),
    spine_weight: float = 0.04,
    other_weight: float = 0.02,
    acc_weight: float = 0.4,
    bone_weight: float = 0.7,
    mask: torch.Tensor | None = None,
    gamma_on_squared: bool = False,
    dyn_reduction: str = "mean",
    fps=None,
    acc_gamma: bool = True,
    bone_reduction: str = "mean",
    unit: float = 1.0,
) -> list[tuple[float, torch.Tensor]]:
    """The terms of a perceptual loss as [(coefficient, per-sample value (N,)), ...], zero
    coefficients left out; kept apart so that an attack can balance their gradients.

    fps: None (derivatives per frame), or the frame rate, a number or one per sample (N,),
    for derivatives per second. acc_gamma=False leaves the derivative terms (order > 0)
    unweighted by γ, as the authors' released code does. bone_reduction: l_bl over
    frames, "mean" (paper Eq. 4) or "sum" (the released code). unit: metres per unit the
    loss is computed in (positions are divided by it), e.g. the scale of normalised data.
    """
    if kind not in PERCEPTUAL_KINDS:
        raise ValueError(f"unknown perceptual loss {kind!r}: choose one of {', '.join(PERCEPTUAL_KINDS)}")
    for name, value in (("dyn_reduction", dyn_reduction), ("bone_reduction", bone_reduction)):
        if value not in DYN_REDUCTIONS:
            raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(DYN_REDUCTIONS)}")
    if unit != 1.0:
        q_adv, q = q_adv / unit, q / unit
    gamma = joint_weights(skeleton, spine_weight, other_weight, q)
    rate = None if fps is None else frame_rates(fps, q)

    def dyn(order):
        weights = gamma if acc_gamma or order == 0 else torch.ones_like(gamma)
        return dynamics_term(q_adv, q, order, weights, mask=mask, gamma_on_squared=gamma_on_squared,
                             reduction=dyn_reduction, fps=rate)

    def bone():
        return bone_length_term(q_adv, q, skeleton, mask=mask, reduction=bone_reduction)

    if kind == "smart":
        terms = [(alpha * float(b), dyn(n)) for n, b in enumerate(betas) if b != 0 and alpha != 0]
        if alpha != 1:
            terms.append((1 - alpha, bone()))
        return terms
    if kind == "l2":
        return [(1.0, dyn(0))]
    if kind == "l2-acc":
        return [(c, dyn(n)) for c, n in ((1 - acc_weight, 0), (acc_weight, 2)) if c != 0]
    return [(c, f()) for c, f in ((1 - bone_weight, lambda: dyn(0)), (bone_weight, bone)) if c != 0]


def joint_weights(skeleton, spine_weight: float, other_weight: float, like: torch.Tensor) -> torch.Tensor:
    """γ per joint (V,) in the dtype/device of `like` (built in float64 so float64 losses stay exact)."""
    w = np.full(skeleton.num_joints, float(other_weight), dtype=np.float64)
    w[list(skeleton.spine)] = float(spine_weight)
    return torch.as_tensor(w, dtype=like.dtype, device=like.device)


def frame_rates(fps, like: torch.Tensor) -> torch.Tensor:
    """Frame rates (N,) in the dtype/device of `like` (N, ...), from a number or one per sample."""
    rate = torch.as_tensor(fps, dtype=like.dtype, device=like.device)
    rate = rate.expand(like.shape[0]) if rate.ndim == 0 else rate
    if rate.shape != (like.shape[0],):
        raise ValueError(f"fps must be a number or one per sample ({like.shape[0]}), got shape {tuple(rate.shape)}")
    if not bool((rate > 0).all()):
        raise ValueError("fps must be positive")
    return rate


def derivative(q: torch.Tensor, order: int, dim: int = TIME_DIM) -> torch.Tensor:
    """n-th forward difference along time (metres per frameⁿ); the time axis shrinks by n."""
    if order < 0:
        raise ValueError(f"derivative order must be >= 0, got {order}")
    return torch.diff(q, n=order, dim=dim) if order > 0 else q


def derivative_mask(mask: torch.Tensor, order: int) -> torch.Tensor:
    """Frames (N, T-n) where the n-th forward difference only touches real frames."""
    m = mask.bool()
    for _ in range(order):
        m = m[:, 1:] & m[:, :-1]
    return m


def dynamics_term(q_adv, q, order, gamma, mask=None, gamma_on_squared=False, reduction="mean",
                  fps=None) -> torch.Tensor:
    """mean over frames of Σ_{m,v,xyz} (γ_v·(qⁿ − q̂ⁿ))² — one β-term of l_dyn, (N,);
    `reduction="sum"` sums over frames instead; with `fps` (N,) the derivative is per secondⁿ."""
    diff = derivative(q_adv, order) - derivative(q, order)  # (N, M, T-n, V, 3)
    if fps is not None and order:
        diff = diff * fps.pow(order).view(-1, *([1] * (diff.ndim - 1)))
    sq = diff.square().sum(dim=-1)  # (N, M, T-n, V)
    w = gamma if gamma_on_squared else gamma.square()
    per_frame = (sq * w).sum(dim=(1, 3))  # (N, T-n)
    frames = None if mask is None else derivative_mask(mask, order)
    if reduction == "mean":
        return _mean_over_frames(per_frame, frames)
    return (per_frame if frames is None else per_frame * frames.to(per_frame.dtype)).sum(dim=1)


def bone_length_term(q_adv, q, skeleton, mask=None, reduction="mean") -> torch.Tensor:
    """l_bl: mean (or sum) over frames of Σ_{m,b} (Bl(q) − Bl(q̂))², (N,)."""
    diff = safe_bone_lengths(q_adv, skeleton) - safe_bone_lengths(q, skeleton)  # (N, M, T, B)
    per_frame = diff.square().sum(dim=(1, 3))
    if reduction == "sum":
        return (per_frame if mask is None else per_frame * mask.to(per_frame.dtype)).sum(dim=1)
    return _mean_over_frames(per_frame, mask)


def safe_bone_lengths(positions: torch.Tensor, skeleton, eps: float = 1e-12) -> torch.Tensor:
    """Bone lengths (..., B) whose gradient stays finite for zero-length bones (padding, absent persons)."""
    v = skeleton.bone_vectors(positions)
    return torch.sqrt(v.square().sum(dim=-1) + eps)


def _mean_over_frames(per_frame: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_frame.mean(dim=1) if per_frame.shape[1] else per_frame.sum(dim=1)
    m = mask.to(per_frame.dtype)
    return (per_frame * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


# ---- classification losses -----------------------------------------------------------
def classification_loss(logits, strategy: str, labels=None, targets=None) -> torch.Tensor:
    """Lc per sample (N,) for strategy 'ab', 'abn' or 'sa' (lower is better for the attacker)."""
    if strategy == "ab":
        return anything_but_loss(logits, labels)
    if strategy == "abn":
        return anything_but_n_loss(logits)
    if strategy == "sa":
        if targets is None:
            raise ValueError("strategy 'sa' needs target labels")
        return specified_loss(logits, targets)
    raise ValueError(f"unknown attack strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")


def anything_but_loss(logits, labels) -> torch.Tensor:
    """AB: −CE(Φ(q̂), y); minimising it pushes the true class down."""
    return -F.cross_entropy(logits, labels, reduction="none")


def anything_but_n_loss(logits) -> torch.Tensor:
    """ABN: −Entropy(softmax(Φ(q̂))); minimising it flattens the predicted distribution."""
    logp = F.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return -entropy


def specified_loss(logits, targets) -> torch.Tensor:
    """SA: CE(Φ(q̂), target)."""
    return F.cross_entropy(logits, targets, reduction="none")


def total_loss(lc: torch.Tensor, lp: torch.Tensor, w: float = 0.4) -> torch.Tensor:
    """L = w·Lc + (1 − w)·Lp, per sample."""
    return w * lc + (1 - w) * lp


# ---- success criteria ----------------------------------------------------------------
def attack_success(logits, strategy: str, labels, targets=None, top_n: int = 3, margin: float = 0.0) -> torch.Tensor:
    """Per-sample success (N,) bool of the strategy's own criterion.

    margin κ > 0 asks for confidence, in logits: AB, the best wrong class leads the true
    one by at least κ; ABN, the N-th best other class does; SA, the target leads every
    other class by at least κ. With κ = 0 the plain argmax / top-N criteria apply.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown attack strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == "sa" and targets is None:
        raise ValueError("strategy 'sa' needs target labels")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not margin:
        if strategy == "ab":
            return logits.argmax(dim=-1) != labels
        if strategy == "abn":
            k = min(int(top_n), logits.shape[-1])
            top = logits.topk(k, dim=-1).indices
            return ~(top == labels[:, None]).any(dim=-1)
        return logits.argmax(dim=-1) == targets
    keep = labels if strategy != "sa" else targets
    own = logits.gather(-1, keep[:, None]).squeeze(-1)
    others = logits.scatter(-1, keep[:, None], float("-inf"))
    if strategy == "sa":
        return own - others.amax(dim=-1) >= margin
    k = 1 if strategy == "ab" else min(int(top_n), logits.shape[-1] - 1)
    return others.topk(k, dim=-1).values[:, -1] - own >= margin
