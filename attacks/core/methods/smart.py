"""SMART and its perceptual-loss ablations: Adam on the motion itself.

The objective is L = w·Lc + (1 − w)·Lp with Lp one of the perceptual losses in
`attacks.core.methods.losses` (`smart`, `l2`, `l2-acc`, `l2-bone`). Adam is written out here rather
than taken from `torch.optim` because its moments are per sample: a frozen (succeeded)
sample must not move, and torch's Adam would keep moving it on momentum even with a
zero gradient. Only the rows of the active samples are read and written.

Gradient balancing (`balance=True`, the default). In metres, with γ = 0.02–0.04 inside
the square, Lp is some 10⁻⁸ for a centimetre of displacement while Lc is of order one,
so a plain weighted sum would let the classification gradient decide everything and
SMART would behave like its ablations. As the authors' released code does, the two
gradients are taken separately, each normalised per sample, person and frame (over
joints and coordinates), and only then mixed with weights w and 1 − w before Adam.
With `balance=False` the raw sum w·Lc + (1 − w)·Lp is differentiated instead.

Term balancing (`balance_terms=True`, the default; this goes beyond the released code).
The same scale problem exists inside Lp: the terms have different units (m² for l_bl
and the position term, m²/s⁴ for the acceleration term), so which one steers depends
on the unit of time and on γ² ≈ 10⁻³, not on α and β. Per frame, l_bl decides and SMART
is l2-bone with jitter; per second, the acceleration term decides and bones stretch
(README, *Attacks on GTU3DActions*). So each term's gradient is normalised per frame
too and weighted by its coefficient (SMART: α·β₀, α·β₂, 1 − α): α and β then say how
much each term steers, as the paper's weights suggest, whatever the units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attacks.core.methods.losses import (DYN_REDUCTIONS, PERCEPTUAL_KINDS, frame_rates, perceptual_loss,
                                         perceptual_terms, total_loss)
from attacks.core.methods.engine import AttackMethod
from attacks.core.methods.registry import Method

TIME_UNITS = ("second", "frame")
UPDATES = ("adam", "step")
TERM_FLOOR = 1e-3  # see _unit_per_frame


@dataclass
class SmartConfig:
    perceptual: str = "smart"  # smart | l2 | l2-acc | l2-bone
    lr: float = 0.005  # metres per step scale; the paper uses 0.005–0.0005
    w: float = 0.4  # weight of the classification loss
    alpha: float = 0.3
    betas: tuple = (0.6, 0.0, 0.4, 0.0, 0.0)
    spine_weight: float = 0.04
    other_weight: float = 0.02
    acc_weight: float = 0.4  # l2-acc only
    bone_weight: float = 0.7  # l2-bone only
    gamma_on_squared: bool = False  # True: γ weights the squared difference (authors' code)
    dyn_reduction: str = "mean"  # l_dyn over frames: "mean" (like l_bl), or "sum" as the paper's formula reads
    time_unit: str = "second"  # derivatives in l_dyn per second (needs the clips' fps) or per "frame"
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    balance: bool = True  # normalise the Lc and Lp gradients separately before mixing them
    balance_terms: bool = True  # with balance: also each term of Lp (its coefficient then weighs a unit gradient)
    update: str = "adam"  # "adam" (per-sample Adam) or "step" (x − lr·g, the released code's gradient descent)
    acc_gamma: bool = True  # γ also weights the derivative terms (False: unweighted, as the released code)
    bone_reduction: str = "mean"  # l_bl over frames: "mean" (paper Eq. 4) or "sum" (released code)
    fixed_fps: float | None = None  # derivatives per second at this rate whatever the clip's (released: 30)
    loss_unit: float = 1.0  # metres per unit Lp is computed in (matters only without balance)
    preset: str = "balanced"  # the named reading these values came from (see PRESETS); the dataclass
    # defaults are `balanced`'s values, `from_preset` (what `method_config` calls) starts from DEFAULT_PRESET

    # SMART's defaults are all here: the field defaults above, the named readings below and
    # which of them a run gets when it names none. The CLI, `generation_config` and the
    # reports read them from this class, so changing a default is one edit.
    #
    # Named readings of SMART (README, *SMART presets*). Each is a set of SmartConfig values;
    # options given explicitly override them. Bump a preset's version whenever its values
    # change: the name and version are stored with every run and shown in every report.
    PRESETS: ClassVar[dict] = {
        # This implementation: Lc and each Lp term's gradient normalised per frame, mixed by w,
        # α·β and 1 − α, then Adam (lr metres per coordinate per step).
        "balanced": {},
        # The paper's text (sections 3-4): L = w·Lc + (1 − w)·Lp summed as printed, w = 0.4,
        # Adam with lr 0.005, γ multiplying the difference before squaring (arXiv Eq.), forward
        # differences per frame. Computed in metres: the authors' lr and loss are in the units
        # of their normalised data, which the paper does not state (README).
        "paper": {"balance": False, "balance_terms": False, "time_unit": "frame"},
        # The authors' released update rule (realcrane's code and the RobustBenchHAR port): the
        # classification and perceptual gradients each normalised (per frame here) and mixed
        # with classWeight 0.6, a plain gradient step of 0.01 (their data units; metres here),
        # Lp = 0.7·l_bl + 0.3·(0.6·Σγ·d² + 0.4·unweighted acceleration), Δt = 1/30 s, frame sums.
        "authors": {"update": "step", "lr": 0.01, "w": 0.6, "balance_terms": False, "gamma_on_squared": True,
                    "acc_gamma": False, "dyn_reduction": "sum", "bone_reduction": "sum", "fixed_fps": 30.0},
    }
    PRESET_VERSIONS: ClassVar[dict] = {"balanced": 1, "paper": 1, "authors": 1}
    DEFAULT_PRESET: ClassVar[str] = "authors"  # chosen from measurements: README, "SMART presets on GTU3DActions"

    @classmethod
    def resolve_preset(cls, preset: str | None = None) -> tuple[str, int]:
        """(name, version) of the preset a run uses: `preset`, or DEFAULT_PRESET when None."""
        preset = preset or cls.DEFAULT_PRESET
        if preset not in cls.PRESETS:
            raise ValueError(f"unknown SMART preset {preset!r}: choose one of {', '.join(cls.PRESETS)}")
        return preset, cls.PRESET_VERSIONS[preset]

    @classmethod
    def from_preset(cls, perceptual: str = "smart", preset: str | None = None, **options) -> "SmartConfig":
        """The preset's values, then `options` on top (an explicit option always wins)."""
        preset, _version = cls.resolve_preset(preset)
        return cls(perceptual=perceptual, preset=preset, **{**cls.PRESETS[preset], **options})

    def step_bound(self) -> float:
        """Most any coordinate moves in one update, in metres: Adam's first step is ±lr per
        coordinate; a plain step moves each frame by at most lr (a unit-norm direction)."""
        return float(self.lr)

    def __post_init__(self):
        if self.dyn_reduction not in DYN_REDUCTIONS:
            raise ValueError(f"dyn_reduction must be one of {', '.join(DYN_REDUCTIONS)}, got {self.dyn_reduction!r}")
        if self.bone_reduction not in DYN_REDUCTIONS:
            raise ValueError(f"bone_reduction must be one of {', '.join(DYN_REDUCTIONS)}, got {self.bone_reduction!r}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {', '.join(UPDATES)}, got {self.update!r}")
        if self.update == "step" and not self.balance:
            raise ValueError("update='step' takes unit-normalised gradients: it needs balance=true")
        if self.preset not in self.PRESETS:
            raise ValueError(f"unknown SMART preset {self.preset!r}: choose one of {', '.join(self.PRESETS)}")
        if not self.loss_unit > 0 or (self.fixed_fps is not None and not self.fixed_fps > 0):
            raise ValueError("loss_unit and fixed_fps must be positive")
        for name in ("balance", "balance_terms", "gamma_on_squared", "acc_gamma"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be one of {', '.join(TIME_UNITS)}, got {self.time_unit!r}")

    def uses_derivatives(self) -> bool:
        """Whether the perceptual loss differentiates in time (then the unit matters)."""
        if self.perceptual == "l2-acc":
            return True
        return self.perceptual == "smart" and any(b != 0 for b in self.betas[1:])


# The names this module has always exported, read from SmartConfig (not copies of it).
PRESETS = SmartConfig.PRESETS
PRESET_VERSIONS = SmartConfig.PRESET_VERSIONS
DEFAULT_PRESET = SmartConfig.DEFAULT_PRESET


class SmartMethod(AttackMethod):
    def __init__(self, config: SmartConfig, originals, skeleton, mask, fps=None):
        super().__init__(config, originals, skeleton, mask, fps=fps)
        self.fps = None
        if config.time_unit == "second" and config.uses_derivatives() and config.fixed_fps:
            self.fps = frame_rates(config.fixed_fps, originals)
        elif config.time_unit == "second" and config.uses_derivatives():
            if fps is None:
                raise ValueError(f"{config.perceptual}: derivatives are per second, so the attack needs the clips' "
                                 "frame rate (fps=...); or set time_unit='frame'")
            self.fps = frame_rates(fps, originals)
        self.m = torch.zeros_like(originals)
        self.v = torch.zeros_like(originals)

    def loss(self, x, idx, lc):
        return total_loss(lc, self.perceptual(x, idx), self.config.w)

    def gradient(self, x, idx, lc, active):
        if not self.config.balance:
            return super().gradient(x, idx, lc, active)
        weight = active.to(lc.dtype)
        # Lp below builds its own graph from x, so the recognizer's is not kept (a compiled
        # recognizer's backward cannot be retained).
        g_c, = torch.autograd.grad((lc * weight).sum(), x)
        if self.config.balance_terms:
            terms = self.perceptual(x, idx, terms=True)
            g_p = torch.zeros_like(x)
            for k, (coefficient, term) in enumerate(terms):
                g, = torch.autograd.grad((term * weight).sum(), x, retain_graph=k < len(terms) - 1)
                g_p = g_p + coefficient * _unit_per_frame(g, floor=TERM_FLOOR)
        else:
            g_p, = torch.autograd.grad((self.perceptual(x, idx) * weight).sum(), x)
        w = self.config.w
        return w * _unit_per_frame(g_c) + (1 - w) * _unit_per_frame(g_p)

    def perceptual(self, x, idx, terms=False):
        c = self.config
        return (perceptual_terms if terms else perceptual_loss)(
            x, self.originals[idx], self.skeleton, kind=c.perceptual, alpha=c.alpha, betas=c.betas,
            spine_weight=c.spine_weight, other_weight=c.other_weight, acc_weight=c.acc_weight,
            bone_weight=c.bone_weight, mask=None if self.mask is None else self.mask[idx],
            gamma_on_squared=c.gamma_on_squared, dyn_reduction=c.dyn_reduction,
            fps=None if self.fps is None else self.fps[idx], acc_gamma=c.acc_gamma,
            bone_reduction=c.bone_reduction, unit=c.loss_unit,
        )

    def step(self, x, grad, idx, iteration):
        c = self.config
        if c.update == "step":
            return x - c.lr * grad
        b1, b2 = c.adam_betas
        t = iteration + 1  # every active sample has taken exactly `iteration` steps so far
        m = b1 * self.m[idx] + (1 - b1) * grad
        v = b2 * self.v[idx] + (1 - b2) * grad.square()
        self.m[idx] = m
        self.v[idx] = v
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        return x - c.lr * m_hat / (v_hat.sqrt() + c.adam_eps)


def _unit_per_frame(grad: torch.Tensor, eps: float = 1e-18, floor: float = 0.0) -> torch.Tensor:
    """Scale (N, M, T, V, 3) so every (sample, person, frame) slice has unit norm (zero stays zero).

    floor > 0: a frame whose norm is below floor × the sample's largest frame norm is scaled
    by that bound instead, so it stays small. Where a term is flat (the acceleration term
    of a perturbation that is locally linear in time), its gradient is rounding noise, and
    a unit push in a noise direction would make the attack depend on float rounding
    (batch composition, device) rather than on the motion.
    """
    norm = grad.flatten(3).norm(dim=-1)  # (N, M, T)
    if floor:
        norm = torch.maximum(norm, floor * norm.flatten(1).amax(dim=1).view(-1, 1, 1))
    return grad / (norm[..., None, None] + eps)


# SMART and its perceptual ablations are one module: the ablations are names for its config
# with another `perceptual` loss, built through the same presets.
METHOD = Method(
    name="smart", config=SmartConfig, implementation=SmartMethod, configure=SmartConfig.from_preset, budget="lr",
    variants={kind: {"perceptual": kind} for kind in PERCEPTUAL_KINDS if kind != "smart"},
)
