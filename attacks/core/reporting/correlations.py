"""Which joints an attack moves together: per-joint motion features of original and
adversarial clips and their cross-correlations over joints (the paper's Fig. 5/6
heat maps are drawn from these by `figures.correlation_heatmap`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from attacks.core.reporting.records import nanmean


CORRELATION_KINDS = ("displacement-displacement", "displacement-speed", "displacement-acceleration")


def joint_motion_features(original, adversarial, fps=None) -> dict[str, np.ndarray]:
    """Per sample and joint (N, V): the attack's mean displacement ‖q̂ − q‖ and the
    original motion's mean speed and acceleration magnitude.

    Means run over persons and frames that exist: a person-frame whose original pose is
    all zero (an absent second person, padding) is left out, and a derivative needs all
    the frames it differences. With `fps` (scalar or (N,)) speed is in m/s and
    acceleration in m/s², otherwise per frame."""
    q = np.asarray(original, dtype=np.float64)
    qa = np.asarray(adversarial, dtype=np.float64)
    if q.shape != qa.shape or q.ndim != 5:
        raise ValueError(f"expected two (N, M, T, V, 3) arrays of one shape, got {q.shape} and {qa.shape}")
    valid = np.abs(q).sum(axis=(-1, -2)) > 0  # (N, M, T)
    disp = np.linalg.norm(qa - q, axis=-1)  # (N, M, T, V)
    vel = np.linalg.norm(np.diff(q, 1, axis=2), axis=-1)
    acc = np.linalg.norm(np.diff(q, 2, axis=2), axis=-1)
    valid_vel = valid[:, :, 1:] & valid[:, :, :-1]
    valid_acc = valid_vel[:, :, 1:] & valid_vel[:, :, :-1]
    out = {"displacement": _mean_over_frames(disp, valid), "speed": _mean_over_frames(vel, valid_vel),
           "acceleration": _mean_over_frames(acc, valid_acc)}
    if fps is not None:
        f = np.broadcast_to(np.asarray(fps, dtype=np.float64), (len(q),))[:, None]
        out["speed"] = out["speed"] * f
        out["acceleration"] = out["acceleration"] * f ** 2
    return out


def cross_correlation(a, b) -> np.ndarray:
    """Pearson correlation of every column of `a` (N, V) with every column of `b` (N, W)
    across the N samples, (V, W). A constant column (or fewer than two samples) has no
    correlation: its entries are NaN rather than a warning or a made-up 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"a and b need the same number of samples, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return np.full((a.shape[1], b.shape[1]), np.nan)
    ac, bc = a - a.mean(0), b - b.mean(0)
    na, nb = np.sqrt((ac ** 2).sum(0)), np.sqrt((bc ** 2).sum(0))
    # A column whose spread is at rounding level of its magnitude is constant.
    na[na <= 1e-12 * (np.abs(a).max(0) * np.sqrt(len(a)) + 1e-300)] = np.nan
    nb[nb <= 1e-12 * (np.abs(b).max(0) * np.sqrt(len(b)) + 1e-300)] = np.nan
    r = (ac.T @ bc) / np.outer(na, nb)
    return np.clip(r, -1.0, 1.0)


def vulnerability_correlations(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Section 4.6's three V×V matrices from `joint_motion_features` output: entry (i, j)
    correlates joint i's displacement with joint j's displacement / speed / acceleration."""
    d = features["displacement"]
    return {"displacement-displacement": cross_correlation(d, d),
            "displacement-speed": cross_correlation(d, features["speed"]),
            "displacement-acceleration": cross_correlation(d, features["acceleration"])}


def correlation_summary(label: str, matrices: dict[str, np.ndarray], num_samples: int) -> list[dict]:
    """One row per matrix: mean of the diagonal (a joint against itself), mean off the
    diagonal and how many entries are undefined (NaN)."""
    rows = []
    for kind, m in matrices.items():
        diag = np.diag(m)
        off = m[~np.eye(len(m), dtype=bool)]
        rows.append({"recognizer": label, "correlation": kind, "samples": int(num_samples),
                     "mean_diagonal": nanmean(diag), "mean_off_diagonal": nanmean(off),
                     "undefined": int(np.isnan(m).sum())})
    return rows


def correlation_frame(matrix: np.ndarray, joint_names, kind: str) -> pd.DataFrame:
    """A V×V matrix with joint names: rows the displaced joint, columns the other quantity's joint."""
    names = [f"{i} {n}" for i, n in enumerate(joint_names)]
    df = pd.DataFrame(matrix, index=names, columns=names)
    df.index.name = f"{kind.split('-')[0]} \\ {kind.split('-')[1]}"
    return df


def _mean_over_frames(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N, M, T, V) values, (N, M, T) validity -> (N, V) mean over valid person-frames (NaN if none)."""
    w = valid[..., None].astype(np.float64)
    count = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (values * w).sum(axis=(1, 2)) / count, np.nan)
