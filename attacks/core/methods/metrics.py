"""Per-sample measurements of how much an attack changed a motion, and per-sample success rates.

All perceptual metrics compare original and adversarial motions (N, M, T, V, 3) in
metres and return one value per sample (N,), averaging only over real frames (an
optional (N, T) mask) and over persons that exist (a person that is all zero in the
original is absent). Derivative deviations use the same forward differences as the
SMART loss: the mean Euclidean norm of the difference between the n-th derivatives of
the two motions, in metres per frameⁿ, or metres per secondⁿ when `fps` is given
(multiplied by fpsⁿ). Inputs may be numpy arrays or torch tensors; outputs are numpy.

Success rates count samples, never batches: ``success_rate`` is the fraction of samples
whose own criterion held.
"""
from __future__ import annotations

import numpy as np
import torch

from attacks.core.methods.losses import derivative, derivative_mask

DERIVATIVE_NAMES = {1: "velocity", 2: "acceleration", 3: "jerk"}


def perceptual_metrics(original, adversarial, skeleton, mask=None, fps=None) -> dict[str, np.ndarray]:
    """Every per-sample metric of this module in one dict of (N,) arrays.

    fps: a number or one frame rate per sample (N,); derivatives are then per second.
    """
    out = {
        "mean_displacement": mean_joint_displacement(original, adversarial, mask),
        "max_displacement": max_joint_displacement(original, adversarial, mask),
        "linf_displacement": linf_displacement(original, adversarial, mask),
        "bone_length_error": bone_length_error(original, adversarial, skeleton, mask),
    }
    for order, name in DERIVATIVE_NAMES.items():
        out[f"{name}_deviation"] = derivative_deviation(original, adversarial, order, mask, fps)
    return out


def mean_joint_displacement(original, adversarial, mask=None) -> np.ndarray:
    """Mean over real frames, present persons and joints of ‖q̂ − q‖ (metres), (N,)."""
    q, qa, valid = _prepare(original, adversarial, mask)
    d = (qa - q).norm(dim=-1)  # (N, M, T, V)
    return _masked_mean(d, valid[..., None].expand_as(d))


def max_joint_displacement(original, adversarial, mask=None) -> np.ndarray:
    """Largest ‖q̂ − q‖ over real frames, present persons and joints (metres), (N,)."""
    q, qa, valid = _prepare(original, adversarial, mask)
    d = (qa - q).norm(dim=-1) * valid[..., None]
    return d.flatten(1).max(dim=1).values.numpy() if d.numel() else np.zeros(len(q))


def linf_displacement(original, adversarial, mask=None) -> np.ndarray:
    """Largest |q̂ − q| of any coordinate over real frames and present persons (metres),
    (N,): the effective L∞ budget a sample used."""
    q, qa, valid = _prepare(original, adversarial, mask)
    d = (qa - q).abs().amax(dim=-1) * valid[..., None]
    return d.flatten(1).max(dim=1).values.numpy() if d.numel() else np.zeros(len(q))


def bone_length_error(original, adversarial, skeleton, mask=None) -> np.ndarray:
    """Mean |Bl(q̂) − Bl(q)| over real frames, present persons and bones (metres), (N,)."""
    q, qa, valid = _prepare(original, adversarial, mask)
    e = (skeleton.bone_lengths(qa) - skeleton.bone_lengths(q)).abs()  # (N, M, T, B)
    return _masked_mean(e, valid[..., None].expand_as(e))


def derivative_deviation(original, adversarial, order: int, mask=None, fps=None) -> np.ndarray:
    """Mean ‖q̂ⁿ − qⁿ‖ of the n-th forward difference (m/frameⁿ, or m/sⁿ with fps), (N,)."""
    q, qa, valid = _prepare(original, adversarial, mask)
    d = (derivative(qa, order) - derivative(q, order)).norm(dim=-1)  # (N, M, T-n, V)
    frames = valid[:, :, order:] & valid[:, :, :-order] if order > 0 else valid
    if mask is not None and order > 0:
        frames = frames & derivative_mask(torch.as_tensor(mask).bool(), order)[:, None, :]
    out = _masked_mean(d, frames[..., None].expand_as(d))
    return out * np.asarray(fps, dtype=np.float64) ** order if fps is not None else out


def success_rate(success, mask=None) -> float:
    """Fraction of samples (optionally among `mask`) whose attack succeeded; NaN when there are none."""
    s = _numpy(success).astype(bool)
    if mask is not None:
        s = s[_numpy(mask).astype(bool)]
    return float(s.mean()) if s.size else float("nan")


def success_rate_by_class(success, labels) -> dict[int, float]:
    """Per true class, the fraction of its samples that were successfully attacked."""
    s = _numpy(success).astype(bool)
    y = _numpy(labels).astype(int)
    return {int(c): float(s[y == c].mean()) for c in np.unique(y)}


def _prepare(original, adversarial, mask):
    q = torch.as_tensor(_numpy(original), dtype=torch.float64)
    qa = torch.as_tensor(_numpy(adversarial), dtype=torch.float64)
    if q.shape != qa.shape:
        raise ValueError(f"original {tuple(q.shape)} and adversarial {tuple(qa.shape)} differ in shape")
    present = q.ne(0).flatten(2).any(dim=2)  # (N, M)
    valid = present[:, :, None].expand(q.shape[0], q.shape[1], q.shape[2])
    if mask is not None:
        valid = valid & torch.as_tensor(_numpy(mask)).bool()[:, None, :]
    return q, qa, valid


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    w = valid.to(values.dtype).flatten(1)
    return ((values.flatten(1) * w).sum(1) / w.sum(1).clamp_min(1.0)).numpy()


def _numpy(x):
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
