"""Hard skeletal constraints used by CIASA: bone-length realignment and joint-angle limits.

Both work on positions (..., V, 3) with any leading shape (batch, persons, frames), and
loop only over joints in topological order (parents before children) — never over
samples or frames.

Joint-angle limits are a per-joint box on the *bending angle* of a bone relative to its
parent bone: the angle between the direction of bone (parent(j) → j) and the direction
of bone (parent(parent(j)) → parent(j)), in degrees, 0 meaning straight continuation.
This is the angle a position-only motion actually determines (Euler angles need local
frames, including the twist about each bone, which joint positions do not carry). Bones
hanging from the root have no parent bone and are not limited. A violating bone is
rotated, in the plane spanned by the two bones, to the nearest bound; its length and
the directions of all other bones are kept, so its subtree follows rigidly.

The HDM05 box in ``rest_poses/hdm05_joint_angle_bounds.npy`` holds Euler (x, y, z)
ranges for the 26 BVH channels of the 31-joint rig; mapping them onto these bending
angles would need the rig's local frames and its joint order, so the faithful default
here is `bone_angle_bounds_from_motions`: the range of bending angles observed in clean
captured motions (plus a margin), which is what "physically plausible" means for a
dataset.
"""
from __future__ import annotations

import numpy as np
import torch


def realign_bones(positions: torch.Tensor, reference: torch.Tensor, skeleton,
                  angle_bounds=None, eps: float = 1e-9) -> torch.Tensor:
    """Rebuild positions from the root so every bone has the reference's length.

    child = parent + unit(child − parent) × |reference bone|, walking the tree from the
    root (the root itself stays where it is). With `angle_bounds` (V, 2) degrees (or a box
    per sample and frame, see `project_bone_angles`), bone directions are first projected
    into their bending-angle box.
    """
    parents = skeleton.parents
    lengths = _per_joint(torch.linalg.vector_norm(skeleton.bone_vectors(reference), dim=-1), skeleton)
    directions = bone_directions(positions, skeleton, eps)
    if angle_bounds is not None:
        directions = project_bone_angles(directions, skeleton, angle_bounds)
    out = positions.clone()
    for j in topological_order(skeleton):
        p = parents[j]
        if p == -1:
            continue
        out[..., j, :] = out[..., p, :] + directions[..., j, :] * lengths[..., j, None]
    return out


def project_bone_angles(directions: torch.Tensor, skeleton, bounds, eps: float = 1e-9) -> torch.Tensor:
    """Bring each bone's bending angle into [lo, hi] degrees (per joint; NaN = no limit).

    directions: unit bone directions (..., V, 3) indexed by the child joint (root row
    unused). bounds: (V, 2), or (..., V, 2) broadcastable to the directions' leading
    shape (a box per sample and frame). Processes joints parents-first so a child is
    judged against its parent's corrected direction.
    """
    bounds = (bounds.to(directions) if torch.is_tensor(bounds) else
              torch.as_tensor(np.asarray(bounds, dtype=np.float64), dtype=directions.dtype, device=directions.device))
    lo_all, hi_all = torch.deg2rad(bounds[..., 0]), torch.deg2rad(bounds[..., 1])
    parents = skeleton.parents
    out = directions.clone()
    for j in topological_order(skeleton):
        p = parents[j]
        if p == -1 or parents[p] == -1:
            continue
        lo, hi = lo_all[..., j], hi_all[..., j]
        if bool(torch.isnan(lo).all() and torch.isnan(hi).all()):
            continue
        lo = torch.nan_to_num(lo, nan=0.0)
        hi = torch.nan_to_num(hi, nan=float(np.pi))
        d, dp = out[..., j, :], out[..., p, :]
        cos = (d * dp).sum(-1).clamp(-1.0, 1.0)
        angle = torch.acos(cos)
        target = torch.minimum(torch.maximum(angle, lo), hi)
        violating = (target != angle) & (dp.norm(dim=-1) > eps) & (d.norm(dim=-1) > eps)
        if not bool(violating.any()):
            continue
        perp = d - cos[..., None] * dp
        perp_norm = perp.norm(dim=-1, keepdim=True)
        fallback = _any_perpendicular(dp)
        perp = torch.where(perp_norm > eps, perp / perp_norm.clamp_min(eps), fallback)
        rotated = torch.cos(target)[..., None] * dp + torch.sin(target)[..., None] * perp
        out[..., j, :] = torch.where(violating[..., None], rotated, d)
    return out


def bone_bending_angles(positions, skeleton, eps: float = 1e-9) -> torch.Tensor:
    """Bending angle (degrees) of every bone relative to its parent bone, (..., V); NaN where undefined."""
    positions = torch.as_tensor(positions)
    d = bone_directions(positions, skeleton, eps)
    out = torch.full(positions.shape[:-1], float("nan"), dtype=positions.dtype, device=positions.device)
    parents = skeleton.parents
    for j in range(skeleton.num_joints):
        p = parents[j]
        if p == -1 or parents[p] == -1:
            continue
        cos = (d[..., j, :] * d[..., p, :]).sum(-1).clamp(-1.0, 1.0)
        out[..., j] = torch.rad2deg(torch.acos(cos))
    return out


def bone_angle_bounds_from_motions(motions, skeleton, mask=None, margin_deg: float = 5.0) -> np.ndarray:
    """(V, 2) degree box of bending angles observed in clean motions (N, M, T, V, 3), widened by a margin.

    Frames outside `mask` (N, T), absent persons and degenerate (zero-length) bones are ignored.
    Joints without a parent bone get NaN (no limit).
    """
    q = torch.as_tensor(np.asarray(motions) if not torch.is_tensor(motions) else motions).double()
    angles = bone_bending_angles(q, skeleton)  # (N, M, T, V)
    lengths = _per_joint(torch.linalg.vector_norm(skeleton.bone_vectors(q), dim=-1), skeleton)
    parent_len = lengths[..., list(max(p, 0) for p in skeleton.parents)]
    valid = (lengths > 1e-6) & (parent_len > 1e-6) & ~torch.isnan(angles)
    if mask is not None:
        valid &= torch.as_tensor(mask).bool()[:, None, :, None]
    bounds = np.full((skeleton.num_joints, 2), np.nan)
    for j in range(skeleton.num_joints):
        a = angles[..., j][valid[..., j]]
        if a.numel():
            bounds[j] = [max(0.0, float(a.min()) - margin_deg), min(180.0, float(a.max()) + margin_deg)]
    return bounds


def bone_directions(positions: torch.Tensor, skeleton, eps: float = 1e-9) -> torch.Tensor:
    """Unit direction of the bone ending at each joint, (..., V, 3); zero for the root and degenerate bones."""
    vec = _per_joint_vectors(skeleton.bone_vectors(positions), skeleton)
    norm = vec.norm(dim=-1, keepdim=True)
    return torch.where(norm > eps, vec / norm.clamp_min(eps), torch.zeros_like(vec))


def topological_order(skeleton) -> list[int]:
    """Joints sorted so every parent comes before its children."""
    depth = skeleton.depth()
    return sorted(range(skeleton.num_joints), key=lambda j: (depth[j], j))


def _per_joint(per_bone: torch.Tensor, skeleton) -> torch.Tensor:
    """(..., B) bone values -> (..., V) indexed by child joint, zero at the root."""
    out = per_bone.new_zeros(per_bone.shape[:-1] + (skeleton.num_joints,))
    out[..., [c for c, _ in skeleton.bones]] = per_bone
    return out


def _per_joint_vectors(per_bone: torch.Tensor, skeleton) -> torch.Tensor:
    out = per_bone.new_zeros(per_bone.shape[:-2] + (skeleton.num_joints, 3))
    out[..., [c for c, _ in skeleton.bones], :] = per_bone
    return out


def _any_perpendicular(d: torch.Tensor) -> torch.Tensor:
    """A unit vector perpendicular to each d (for bones parallel to their parent)."""
    ex = torch.zeros_like(d)
    ex[..., 0] = 1.0
    ey = torch.zeros_like(d)
    ey[..., 1] = 1.0
    axis = torch.where((d[..., :1].abs() < 0.9), ex, ey)
    c = torch.linalg.cross(d, axis)
    return c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12)
