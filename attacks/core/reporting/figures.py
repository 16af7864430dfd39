"""Static pictures for admin and reports (stick-figure strips, joint-correlation heat maps,
success bar charts), and the one way every figure is written.

matplotlib runs on its file-only Agg backend (servers and CI have no display) and is
imported on first use, so training, attack workers and the web process load it only
when they draw. Every figure of the project, of the attack backend and of the studies,
is laid out, written and closed by `save_figure` (a file) or `figure_png` (bytes), so a
figure is never left open to leak memory in a long-running process.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from attacks.core.reporting.records import attack_order, is_missing

PERSON_COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad")


def stick_figure_strip(motion: np.ndarray, skeleton, num_panels: int = 6, overlay: np.ndarray | None = None,
                       size: float = 1.6) -> bytes:
    """PNG bytes: `num_panels` evenly spaced frames of (M, T, V, 3), front view (x right, y up).

    `overlay` (same shape) is drawn in orange on top, to compare an adversarial motion
    with its original.
    """
    m, t, v, _ = motion.shape
    frames = np.unique(np.linspace(0, t - 1, num_panels).round().astype(int))
    present = [p for p in range(m) if np.abs(motion[p]).sum() > 0] or [0]
    pts = motion[present].reshape(-1, 3)
    pts = pts[np.abs(pts).sum(1) > 0] if (np.abs(pts).sum(1) > 0).any() else pts
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.1 * max(hi[1] - lo[1], hi[0] - lo[0], 1e-3)
    fig, axes = pyplot().subplots(1, len(frames), figsize=(size * len(frames), size * 1.4), squeeze=False)
    for ax, f in zip(axes[0], frames):
        for p in present:
            _draw(ax, motion[p, f], skeleton, PERSON_COLOURS[p % len(PERSON_COLOURS)])
            if overlay is not None:
                _draw(ax, overlay[p, f], skeleton, "#f39c12", width=1.2)
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_aspect("equal")
        ax.set_title(f"frame {f}", fontsize=7)
        ax.axis("off")
    return figure_png(fig, dpi=80)


def correlation_heatmap(matrix: np.ndarray, joint_names, title: str, path, kind: str) -> Path:
    """A diverging heat map on −1..1 (NaN in grey), joint names on both axes; PNG at `path`."""
    v = len(joint_names)
    names = [f"{i} {n}" for i, n in enumerate(joint_names)]
    size = max(4.0, 0.22 * v + 2.0)
    fig, ax = pyplot().subplots(figsize=(size + 1.0, size))
    cmap = pyplot().get_cmap("RdBu_r").with_extremes(bad="#bbbbbb")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks(range(v), names, rotation=90, fontsize=6)
    ax.set_yticks(range(v), names, fontsize=6)
    first, second = kind.split("-")
    ax.set_ylabel(f"{first} of joint")
    ax.set_xlabel(f"{second} of joint")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Pearson r")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def success_bar_chart(long: pd.DataFrame, path, title: str = "Success rate per recognizer and attack") -> Path:
    """Grouped bars: per recognizer, the success rate of each attack (Table 1 as a picture)."""
    attacks = sorted(long["attack"].unique(), key=attack_order) if len(long) else []
    recognizers = list(dict.fromkeys(long["recognizer"])) if len(long) else []
    fig, ax = pyplot().subplots(figsize=(max(4.0, 1.2 * len(recognizers) + 2), 3.6))
    width = 0.8 / max(1, len(attacks))
    x = np.arange(len(recognizers))
    for k, attack in enumerate(attacks):
        rates = [_lookup_rate(long, r, attack) for r in recognizers]
        bars = ax.bar(x + (k - (len(attacks) - 1) / 2) * width, [100 * r if not is_missing(r) else 0 for r in rates],
                      width, label=attack)
        for bar, r in zip(bars, rates):
            if not is_missing(r):
                ax.annotate(f"{100 * r:.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=6)
    ax.set_xticks(x, recognizers, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success rate (%)")
    ax.set_title(title, fontsize=9)
    if attacks:
        ax.legend(fontsize=7, ncols=len(attacks), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def _lookup_rate(long, recognizer, attack) -> float:
    hit = long[(long["recognizer"] == recognizer) & (long["attack"] == attack)]
    return float(hit["success_rate"].iloc[0]) if len(hit) else float("nan")


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use."""
    import matplotlib
    matplotlib.use("Agg")  # files only; never open a window (servers, CI)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Lay the figure out, write it to `path` (creating its folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def figure_png(fig, dpi: int = 100) -> bytes:
    """Lay the figure out, render it as PNG bytes (for an HTTP response or an admin page) and close it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return buf.getvalue()


def _draw(ax, pose, skeleton, colour, width=2.0):
    for c, p in skeleton.bones:
        ax.plot([pose[c, 0], pose[p, 0]], [pose[c, 1], pose[p, 1]], color=colour, lw=width, solid_capstyle="round")
    ax.scatter(pose[:, 0], pose[:, 1], s=4, color=colour, zorder=3)
