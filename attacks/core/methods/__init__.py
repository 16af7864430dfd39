"""Adversarial attack methods on skeletal motions, batched, one sample judged at a time.

    attack(model, motions, labels, skeleton, method="smart", strategy="ab", ...)
        -> AttackResult

Methods: ``smart`` and its perceptual ablations ``l2``, ``l2-acc``, ``l2-bone`` (Adam on
the motion, `smart.SmartConfig`), ``iaa`` (BIM with an L∞ budget, `iaa.IAAConfig`) and
``ciasa`` (clipping + joint-angle limits + bone realignment + GAN regulariser,
`ciasa.CIASAConfig`). Method options are the fields of the method's config dataclass and
are passed as keyword arguments (e.g. ``lr=0.001``, ``epsilon=0.02``, ``gan_weight=0.5``).

Each method module declares itself as a `registry.Method` (names, config, implementation,
prepare hook) and is registered below in one line; everything here looks methods up in
`REGISTRY`. A new method is a module ending in ``METHOD = Method(...)`` plus its line in
`REGISTRY` (or ``REGISTRY.register(...)`` at run time).

Motions are (N, M, T, V, 3) in world units (metres); the device is the motions' device.
The recognizer is any ``nn.Module`` with ``forward(x) -> logits``, x (N, 3, T, V, M); a
``preprocess`` callable (motions -> motions, differentiable) applies whatever
normalisation the recognizer was trained with, so perturbations stay in world units.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch

from attacks.core.progress import steps
from attacks.core.methods import ciasa, iaa, smart
from attacks.core.methods.losses import STRATEGIES
from attacks.core.methods.ciasa import CIASAConfig, linf_distance, prepare_ciasa, resolve_angle_bounds
from attacks.core.methods.engine import (
    AttackResult, correctly_classified, forward_logits, perturbable_mask, predict, random_targets, run_attack,
)
from attacks.core.methods.iaa import IAAConfig
from attacks.core.methods.motion_discriminator import (MotionDiscriminator, train_discriminator_against_attack,
                                                  train_motion_discriminator)
from attacks.core.methods.numerics import Numerics
from attacks.core.methods.registry import Method, MethodNames, Preparation, Registry, draw_targets, prepare_attack
from attacks.core.methods.smart import SmartConfig
from attacks.core.methods.skeleton_constraints import (
    bone_angle_bounds_from_motions, bone_bending_angles, project_bone_angles, realign_bones,
)

# One line per method module; the order is the order of METHODS (CLI choices, forms).
REGISTRY = Registry(
    smart.METHOD,
    iaa.METHOD,
    ciasa.METHOD,
)
METHODS = MethodNames(REGISTRY)  # every registered name, SMART's ablations included

__all__ = [
    "METHODS", "REGISTRY", "Method", "Preparation", "STRATEGIES", "AttackResult", "attack", "attack_in_batches",
    "method_config", "prepare", "draw_targets",
    "correctly_classified", "predict", "random_targets", "perturbable_mask", "forward_logits",
    "Numerics", "SmartConfig", "IAAConfig", "CIASAConfig", "MotionDiscriminator", "train_motion_discriminator",
    "train_discriminator_against_attack", "prepare_ciasa", "resolve_angle_bounds", "linf_distance",
    "realign_bones", "project_bone_angles", "bone_bending_angles", "bone_angle_bounds_from_motions",
]


def method_config(method: str, **options):
    """The config dataclass of `method` with `options` applied (unknown options raise TypeError)."""
    return REGISTRY.config(method, **options)


def prepare(config, model, skeleton, labels, **kwargs) -> Preparation:
    """Fix what a run shares before its first batch: SA targets over all `labels` and the
    method's learned state (its `prepare` hook). See `registry.prepare_attack`."""
    return prepare_attack(REGISTRY, config, model, skeleton, labels, **kwargs)


def attack(
    model: torch.nn.Module,
    motions,
    labels,
    skeleton,
    method: str = "smart",
    strategy: str = "ab",
    top_n: int = 3,
    targets=None,
    iterations: int = 300,
    mask=None,
    seed: int = 0,
    preprocess: Callable | None = None,
    progress: Callable | None = None,
    early_stop: bool = True,
    config=None,
    fps=None,
    margin: float = 0.0,
    accept: Callable | None = None,
    train_motions=None,
    train_labels=None,
    numerics: Numerics | None = None,
    **method_options,
) -> AttackResult:
    """Attack every motion of a batch; each stops at its own success (see `engine.run_attack`).

    targets: SA target labels (N,); drawn with `random_targets(labels, C, seed)` when None.
    mask: (N, T) bool, True on real frames (padded frames are never perturbed nor counted).
    fps: frame rate, a number or one per motion (N,): SMART's derivatives are per second.
    progress: called as progress(iteration, iterations, samples_done).
    early_stop=False runs the full budget (for throughput measurements).
    margin, accept: see `engine.run_attack` (a logit margin; a second judge before freezing).
    train_motions, train_labels: clean training clips (never the ones attacked) from which
    CIASA learns its joint-angle box and trains its discriminator (`prepare_ciasa`), when
    the config does not give them.
    numerics: how the recognizer runs (`numerics.Numerics`: bf16, torch.compile, ...);
    default the exact float32 eager path. Success and probabilities are reported from
    the float32 recognizer whatever it says.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown attack strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    motions = torch.as_tensor(motions)
    if not motions.is_floating_point():
        motions = motions.float()
    device = motions.device
    labels = torch.as_tensor(labels, device=device).long()
    mask = None if mask is None else torch.as_tensor(mask, device=device).bool()
    config = config if config is not None else method_config(method, **method_options)

    # A config prepared already (attack_in_batches, a generation run) is used as it is.
    prepared = prepare(config, model, skeleton, labels, strategy=strategy, seed=seed, targets=targets,
                       probe=motions[:1], preprocess=preprocess, train_motions=train_motions,
                       train_labels=train_labels)
    targets = prepared.targets
    if targets is not None:
        targets = targets.to(device)
        if bool((targets == labels).any()):
            raise ValueError("a specified attack's target equals the true label")
    impl = prepared.method.build(prepared.config, motions.detach(), skeleton, mask,
                                 fps=None if fps is None else torch.as_tensor(fps, dtype=motions.dtype, device=device))

    return run_attack(
        model, motions, labels, impl, strategy=strategy, top_n=top_n, targets=targets,
        iterations=iterations, mask=mask, preprocess=preprocess, progress=progress, early_stop=early_stop,
        margin=margin, accept=accept, numerics=numerics,
    )


# attack()'s own keywords; any other option of attack_in_batches is a method option.
_ATTACK_KEYWORDS = frozenset(name for name, p in inspect.signature(attack).parameters.items()
                             if p.kind is not inspect.Parameter.VAR_KEYWORD)


def attack_in_batches(
    model: torch.nn.Module,
    motions,
    labels,
    skeleton,
    batch_size: int = 64,
    device=None,
    masks=None,
    targets=None,
    fps=None,
    on_batch: Callable | None = None,
    show_progress: bool = True,
    method: str = "smart",
    strategy: str = "ab",
    seed: int = 0,
    accept: Callable | None = None,
    keep_results: bool = True,
    **attack_options,
) -> AttackResult | None:
    """Attack a large array (N, M, T, V, 3) batch by batch; results are gathered on the CPU.

    keep_results=False returns None and keeps no batch's result once `on_batch` has had it:
    a caller that stores each batch (generation) then holds one batch of adversarial
    motions, not the whole array's.

    accept(motions, indices) judges candidates before they are frozen (`engine.run_attack`),
    with `indices` positions in `motions`.
    on_batch(batch_index, indices, result) is called as soon as a batch is done
    (`indices` are positions in `motions`, `result` is on the CPU), so a caller can store
    each batch and resume later by passing only the clips it has not stored. For resumable
    SA runs, draw targets once for the whole set with `draw_targets` and pass them.
    The run is prepared once (`prepare`) before the first batch: SA targets drawn over all
    `labels`, and CIASA learns its angle box and trains its discriminator on `train_motions`
    / `train_labels` (clean training clips, never these), unless the options give them.
    fps: a number, or one frame rate per motion (N,).
    """
    n = len(motions)
    device = torch.device(device) if device is not None else (
        motions.device if torch.is_tensor(motions) else torch.device("cpu"))
    labels_all = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long().cpu()
    # Prepared once for the whole set (SA targets, the method's learned state); every batch
    # gets the prepared config and its rows of the targets, so nothing is drawn or trained twice.
    config = attack_options.pop("config", None)
    method_options = {k: attack_options.pop(k) for k in list(attack_options) if k not in _ATTACK_KEYWORDS}
    config = config if config is not None else method_config(method, **method_options)
    train = attack_options.pop("train_motions", None)
    train_labels = attack_options.pop("train_labels", None)
    prepared = prepare(
        config, model, skeleton, labels_all, strategy=strategy, seed=seed, targets=targets,
        probe=_batch(motions, [0], device) if n and strategy == "sa" and targets is None else None,
        preprocess=attack_options.get("preprocess"),
        train_motions=None if train is None else torch.as_tensor(train).to(device), train_labels=train_labels)
    targets = prepared.targets
    attack_options["config"] = prepared.config

    results = []
    starts = range(0, n, batch_size)
    bar = steps(starts, f"{method}/{strategy}", "batch", enabled=show_progress)
    fooled = attacked = 0
    for b, start in enumerate(bar):
        idx = np.arange(start, min(start + batch_size, n))
        judge = None if accept is None else (lambda x, rows, _idx=idx: accept(x, _idx[rows.cpu().numpy()]))
        result = attack(
            model, _batch(motions, idx, device), labels_all[idx].to(device), skeleton,
            method=method, strategy=strategy, seed=seed,
            targets=None if targets is None else torch.as_tensor(targets)[idx].to(device),
            mask=None if masks is None else _batch(masks, idx, device),
            fps=fps if fps is None or np.ndim(fps) == 0 else np.asarray(fps, dtype=np.float64)[idx],
            accept=judge, **attack_options,
        ).cpu()
        if on_batch is not None:
            on_batch(b, idx, result)
        if keep_results:
            results.append(result)
        fooled, attacked = fooled + int(result.success.sum()), attacked + len(idx)
        bar.set_postfix(fooled=f"{fooled}/{attacked}")
    if not attacked:
        raise ValueError("attack_in_batches got no motions")
    return AttackResult.concatenate(results) if keep_results else None


def _batch(array, idx, device):
    x = array[torch.as_tensor(idx)] if torch.is_tensor(array) else torch.as_tensor(np.asarray(array)[idx])
    if x.is_floating_point():
        x = x.float()
    return x.to(device)
