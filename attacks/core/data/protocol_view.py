"""What a recognizer sees of a motion in world units: its protocol's normalisation.

Every path that feeds motions to a recognizer goes through `recognizer_inputs` (or,
inside an attack, through `normalise`, the differentiable part of it): training,
`generate_samples`, `classify`, `transfer_samples` and the reports. So a motion given in
world units (metres, y up, as stored and exported) is always seen the way the recognizer
was trained, whatever protocol its dataset was imported with, and a stored adversarial
sample is judged exactly as the attack judged it.

The normalisation is computed from the motion it is applied to. An attack therefore
perturbs the world-unit motion and differentiates through the normalisation (the
centre and the facing angle move with the perturbed joints), and the stored sample is
the attacked tensor itself, not a transform of it.

Views, by the recognizer's import protocol (see `attacks.core.data.preprocessing`):

``raw`` and ``smart``
    Linear resampling to the model's frame count (first and last frames kept), then the
    centre joint of person 0 in frame 0 to the origin and one turn about y so that the
    body faces +z in that frame (lateral axis from the hips, the shoulders where hips
    are missing or degenerate). Applied to an already normalised motion it changes
    nothing, so normalised exports classify as well.
``ntu``
    2s-AGCN's normalisation: per person null frames dropped and the rest repeated
    cyclically to the model's frame count (a repetition keeps the frame rate), the centre
    joint of person 0 subtracted per frame, then one rotation from the first frame (spine
    base -> spine mid onto +y, shoulders turned onto the x axis). Also idempotent.

Persons that are entirely zero are absent and stay zero.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from attacks.core.data.preprocessing import check_protocol, to_fixed_length


@dataclass
class ModelInputs:
    world: np.ndarray  # (N, M, T, V, 3) float32, world units at the model's size: what attacks perturb
    X: np.ndarray  # (N, M, T, V, 3) float32, what the recognizer takes (`normalise` of world)
    fps: np.ndarray  # (N,) frame rate of both, so a resampled clip keeps its duration


def model_inputs(motions, skeleton, num_frames: int, num_persons: int, fps, protocol: str) -> ModelInputs:
    """World-unit motions (a list of (M, T, V, 3)) at frame rate `fps` -> `ModelInputs`.

    Each clip's rows depend on that clip only (not on what it is batched with), bit for bit.
    """
    world = fixed_length(motions, protocol, num_frames, num_persons)
    with torch.no_grad():
        X = normalise(torch.from_numpy(world), protocol, skeleton).numpy()
    return ModelInputs(world=world, X=X, fps=frame_rates(protocol, fps, [m.shape[1] for m in motions], num_frames))


def recognizer_inputs(motions, protocol: str, skeleton, num_frames: int, num_persons: int) -> np.ndarray:
    """World-unit motions (a list of (M, T, V, 3)) -> the recognizer's batch (N, M', T', V, 3), float32."""
    world = fixed_length(motions, protocol, num_frames, num_persons)
    with torch.no_grad():
        return normalise(torch.from_numpy(world), protocol, skeleton).numpy()


def fixed_length(motions, protocol: str, num_frames: int, num_persons: int) -> np.ndarray:
    """World-unit motions -> (N, num_persons, num_frames, V, 3) float32, still in world units."""
    check_protocol(protocol)
    motions = [np.asarray(m, dtype=np.float32) for m in motions]
    if protocol != "ntu":
        return to_fixed_length(motions, num_frames, num_persons)
    return np.stack([_cyclic(m, num_frames, num_persons) for m in motions]).astype(np.float32)


def frame_rates(protocol: str, fps, lengths, num_frames: int) -> np.ndarray:
    """Frame rate (N,) of `fixed_length`'s output: resampling keeps a clip's duration,
    cyclic repetition (``ntu``) keeps its rate."""
    lengths = np.asarray(lengths, dtype=np.float64)
    fps = np.broadcast_to(np.asarray(fps, dtype=np.float64), lengths.shape)
    if protocol == "ntu":
        return fps.copy()
    return fps * num_frames / np.maximum(lengths, 1)


def normalise(x: torch.Tensor, protocol: str, skeleton) -> torch.Tensor:
    """(N, M, T, V, 3) world -> normalised, per sample and differentiable in `x`."""
    check_protocol(protocol)
    present = x.detach().ne(0).flatten(2).any(dim=2)[:, :, None, None, None]  # (N, M, 1, 1, 1)
    if protocol == "ntu":
        centre = x[:, :1, :, skeleton.center_joint][:, :, :, None, :]  # (N, 1, T, 1, 3), per frame
        centred = torch.where(present, x - centre, torch.zeros_like(x))
        rotation = _spine_up_shoulders_x(centred[:, 0, 0], skeleton)
    else:
        centre = x[:, 0, 0, skeleton.center_joint][:, None, None, None, :]  # (N, 1, 1, 1, 3)
        centred = x - centre
        rotation = rotation_about_y(*_facing_direction(x[:, 0, 0], skeleton))
    turned = torch.einsum("nij,nmtvj->nmtvi", rotation, centred)
    return torch.where(present, turned, torch.zeros_like(turned))


# ---- geometry (torch mirrors of attacks.core.data.preprocessing) ---------------------------------

def _facing_direction(frame: torch.Tensor, skeleton) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V, 3) -> cos and sin (N,) of the turn about y that maps right - left onto -x
    (the body then faces +z); no turn where the lateral axis is degenerate."""
    lateral = _lateral(frame, skeleton)
    if lateral is None:
        return frame.new_ones(frame.shape[0]), frame.new_zeros(frame.shape[0])
    return _unit_direction(-lateral[:, 0], -lateral[:, 2])


def _unit_direction(x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z) / |(x, z)|, i.e. cos and sin of atan2(z, x), and (1, 0) where |(x, z)| < 1e-9.

    Only exactly rounded operations (no atan2, cos, sin): their vectorised and scalar
    kernels can differ in the last bit, which would make a clip's view depend on its
    position in the batch; this way a clip is normalised bit-identically whether it is
    batched with the whole split or with a streamed chunk (`attacks.services.clip_cache`).
    """
    degenerate = x * x + z * z < 1e-18
    safe_x = torch.where(degenerate, torch.ones_like(x), x)
    safe_z = torch.where(degenerate, torch.zeros_like(z), z)
    norm = torch.sqrt(safe_x * safe_x + safe_z * safe_z)
    return safe_x / norm, safe_z / norm


def _lateral(frame, skeleton):
    """right - left (N, 3) from the hips, or the shoulders where hips are missing or degenerate."""
    pairs = [p for p in (skeleton.hips, skeleton.shoulders) if p is not None]
    if not pairs:
        warnings.warn(f"skeleton {skeleton.name!r} defines neither hips nor shoulders: facing is not "
                      "normalised (add 'hips' or 'shoulders', or left/right parts, to the rig)", stacklevel=3)
        return None
    lateral = frame[:, pairs[0][1]] - frame[:, pairs[0][0]]
    for left, right in pairs[1:]:
        weak = torch.hypot(lateral[:, 0], lateral[:, 2]) < 1e-6
        lateral = torch.where(weak[:, None], frame[:, right] - frame[:, left], lateral)
    return lateral


def _spine_up_shoulders_x(frame: torch.Tensor, skeleton) -> torch.Tensor:
    """(N, V, 3) centred first frames -> (N, 3, 3): spine onto +y, then (left - right) onto +x."""
    if len(skeleton.spine) >= 2:
        bottom, top = skeleton.spine[0], skeleton.spine[1]
    else:
        bottom, top = skeleton.root, skeleton.center_joint
    tilt = _minimal_rotation_to_y(frame[:, top] - frame[:, bottom])
    pair = skeleton.shoulders or skeleton.hips
    if pair is None:
        return tilt
    upright = torch.einsum("nij,nj->ni", tilt, frame[:, pair[1]] - frame[:, pair[0]])
    return rotation_about_y(*_unit_direction(-upright[:, 0], -upright[:, 2])) @ tilt


def _minimal_rotation_to_y(vector: torch.Tensor) -> torch.Tensor:
    """(N, 3) -> (N, 3, 3), the smallest rotation taking each direction onto +y.

    R = I + K + K² / (1 + cos) with K the cross-product matrix of v × y (v the unit
    direction); a direction opposite to +y gets a half turn about z, a null vector identity.
    """
    norm = vector.norm(dim=-1, keepdim=True)
    null = norm[:, 0] < 1e-9
    v = vector / torch.where(null[:, None], torch.ones_like(norm), norm)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=vector.dtype, device=vector.device).expand_as(v)
    axis = torch.cross(v, y, dim=-1)
    cos = (v * y).sum(-1)
    opposite = (1 + cos) < 1e-6
    zero = torch.zeros_like(cos)
    k = torch.stack([torch.stack([zero, -axis[:, 2], axis[:, 1]], -1),
                     torch.stack([axis[:, 2], zero, -axis[:, 0]], -1),
                     torch.stack([-axis[:, 1], axis[:, 0], zero], -1)], -2)
    eye = torch.eye(3, dtype=vector.dtype, device=vector.device).expand(len(v), 3, 3)
    scale = 1 / torch.where(opposite, torch.ones_like(cos), 1 + cos)
    rotation = eye + k + (k @ k) * scale[:, None, None]
    # as attacks.core.data.preprocessing: a half turn about an axis perpendicular to +y (here z)
    half_turn = torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=vector.dtype, device=vector.device))
    rotation = torch.where(opposite[:, None, None], half_turn.expand_as(rotation), rotation)
    return torch.where(null[:, None, None], eye, rotation)


def rotation_about_y(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """cos and sin (N,) of the angles -> (N, 3, 3) right-handed rotations about +y (torch, differentiable;
    `readers.kinematics.axis_rotation` is the numpy builder with the same convention)."""
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)


def _cyclic(motion: np.ndarray, num_frames: int, num_persons: int) -> np.ndarray:
    """One motion for an ``ntu`` recognizer: per person, null frames dropped, the rest repeated."""
    out = np.zeros((num_persons, num_frames, *motion.shape[2:]), dtype=np.float32)
    for m in range(min(num_persons, motion.shape[0])):
        frames = motion[m][np.abs(motion[m]).sum(axis=(1, 2)) > 0]
        if len(frames):
            out[m] = frames[np.arange(num_frames) % len(frames)]
    return out
