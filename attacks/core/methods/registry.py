"""The attack methods as declarations, and the one registry every caller looks them up in.

Each method module (`smart`, `iaa`, `ciasa`, ...) ends with one `Method` saying what it
is: its name and the other names it answers to, its config dataclass, the `AttackMethod`
that implements it, the option it spends as its budget, and its `prepare` hook when it
must learn something before the first batch. `attacks.core.methods` registers them in one
line each; `METHODS`, `method_config`, `attack()`'s choice of implementation and the
generation service all read this registry, so a new method is one module plus one line,
and nothing dispatches on method names or config types by hand.

Preparing is split from attacking because whatever is random or learned must be fixed
once for the whole run: a batch, a Celery shard or a resumed run must see the same SA
targets and the same learned state (CIASA's angle box and discriminator) as an
uninterrupted run, or the stored samples would depend on how the work was cut up.
`prepare_attack` does both parts, once, for whoever runs the attack.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import torch

from attacks.core.methods.engine import forward_logits, random_targets


def _never(config) -> bool:
    return False


@dataclasses.dataclass
class Method:
    """One attack method, as its module declares it.

    name: the module's own name; `variants` maps further names to the options they apply
    first (SMART's ablations are names of the SMART module: `"l2": {"perceptual": "l2"}`),
    so `method_config(name, **options)` is `configure(**variants[name], **options)`.
    configure: builds the config from options (default: the config class itself), for a
    config with its own defaulting rule (SMART's presets).
    implementation: an `engine.AttackMethod` subclass, built as
    implementation(config, originals, skeleton, mask, fps=...).
    prepare: prepare(config, model, skeleton, train_motions, train_labels, *, preprocess,
    seed) -> (prepared config, record), run once per run before the first batch; `record`
    says what the learned state came from. None when a method learns nothing.
    needs_preparation(config): whether `prepare` still has something to fix for this
    config (CIASA: a box or a discriminator to learn from clean training clips, which the
    generation service then reads). A config for which it is False is attacked as it is,
    so `attack()` calls `prepare` only when it is True, and a prepared config (what
    `prepare` returned) must answer False: that is what keeps a run from preparing twice.
    Required with `prepare`.
    budget: the option the method's success grows with (calibration and budget sweeps).
    """

    name: str
    config: type
    implementation: type
    prepare: Callable | None = None
    needs_preparation: Callable[[Any], bool] | None = None
    variants: dict = dataclasses.field(default_factory=dict)
    configure: Callable | None = None
    budget: str | None = None

    def __post_init__(self):
        if self.prepare is not None and self.needs_preparation is None:
            raise ValueError(f"method {self.name!r}: a prepare hook needs needs_preparation(config), which "
                             "says when a config still has something to prepare")
        if self.needs_preparation is None:
            self.needs_preparation = _never

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.variants)

    def make_config(self, name: str, **options):
        return (self.configure or self.config)(**{**self.variants.get(name, {}), **options})

    def build(self, config, originals, skeleton, mask, fps=None):
        return self.implementation(config, originals, skeleton, mask, fps=fps)


class Registry:
    """Methods by every name they answer to, in registration order."""

    def __init__(self, *methods: Method):
        self._methods: list[Method] = []
        self._by_name: dict[str, Method] = {}
        for method in methods:
            self.register(method)

    def register(self, method: Method) -> Method:
        taken = [n for n in method.names if n in self._by_name]
        if taken:
            raise ValueError(f"attack method name {', '.join(taken)} is already registered")
        self._methods.append(method)
        self._by_name.update({n: method for n in method.names})
        return method

    def unregister(self, name: str) -> Method:
        method = self[name]
        self._methods.remove(method)
        for n in method.names:
            del self._by_name[n]
        return method

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self):
        return iter(tuple(self._methods))

    def __contains__(self, name) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Method:
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown attack method {name!r}: choose one of {', '.join(self._by_name)}") from None

    def for_config(self, config) -> Method:
        """The method a config object belongs to (the most derived config class wins)."""
        owners = [m for m in self._methods if isinstance(config, m.config)]
        if not owners:
            raise TypeError(f"not an attack config: {type(config).__name__}")
        return max(owners, key=lambda m: len(m.config.__mro__))

    def config(self, name: str, **options):
        """The config of method `name` with `options` applied (unknown options raise TypeError)."""
        return self[name].make_config(name, **options)


class MethodNames(Sequence):
    """The registered names, read live: a method registered later (a test's toy) is a
    choice wherever `METHODS` is (argparse, forms, `generation_config`)."""

    def __init__(self, registry: Registry):
        self._registry = registry

    def __getitem__(self, i):
        return self._registry.names()[i]

    def __len__(self):
        return len(self._registry.names())

    def __contains__(self, name):
        return name in self._registry

    def __eq__(self, other):
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    __hash__ = None  # it changes with the registry, so it is no dict key

    def __repr__(self):
        return repr(tuple(self))


@dataclasses.dataclass
class Preparation:
    """What a run fixes before its first batch: the method's prepared config, the SA targets
    of every motion (None for untargeted strategies) and the prepare hook's record."""

    method: Method
    config: Any
    targets: torch.Tensor | None
    record: dict


def draw_targets(labels, num_classes: int, seed: int = 0, target=None) -> torch.Tensor:
    """SA targets of a whole set, drawn in one go: one label for every class (`target` an
    index) or, for `target` None / "random", `random_targets(labels, num_classes, seed)`.
    A run draws over its whole scope, so any subset of it (batch, shard, resumed rest)
    reads its targets by position and gets the ones an uninterrupted run had."""
    labels = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long().cpu()
    if target is None or (isinstance(target, str) and target == "random"):
        return random_targets(labels, num_classes, seed)
    target = int(target)
    if not 0 <= target < num_classes:
        raise ValueError(f"target {target} is not a class (0..{num_classes - 1})")
    return torch.full(labels.shape, target, dtype=torch.int64)


def prepare_attack(registry: Registry, config, model, skeleton, labels, *, strategy: str = "ab", seed: int = 0,
                   targets=None, target=None, num_classes: int | None = None, probe=None, preprocess=None,
                   train_motions=None, train_labels=None, always: bool = False) -> Preparation:
    """Fix what a run shares, once: SA targets for all `labels` and the method's learned state.

    targets: given SA targets (kept as they are); else drawn by `draw_targets` with
    `target` over all `labels`, with `num_classes` or, when None, the recognizer's output
    size on `probe` (one motion). The method's `prepare` hook runs when its config still
    needs preparing (`Method.needs_preparation`), or whenever it has one with `always` (a
    run that stores the hook's record and state); otherwise the config is returned as it is.
    """
    method = registry.for_config(config)
    if strategy == "sa":
        if targets is None:
            if num_classes is None:
                with torch.no_grad():
                    num_classes = forward_logits(model, probe, preprocess).shape[-1]
            targets = draw_targets(labels, num_classes, seed, target)
        targets = torch.as_tensor(np.asarray(targets) if not torch.is_tensor(targets) else targets).long()
    else:
        targets = None
    record = {}
    if method.prepare is not None and (always or method.needs_preparation(config)):
        config, record = method.prepare(config, model, skeleton, train_motions, train_labels, preprocess=preprocess,
                                        seed=seed)
    return Preparation(method=method, config=config, targets=targets, record=record)
