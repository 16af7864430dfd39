"""The batched attack loop shared by every method.

One loop drives SMART, its ablations, IAA and CIASA: each iteration runs the recognizer
on the samples that are still being attacked, judges every sample by its own success
criterion, freezes the ones that just succeeded (their adversarial motion is recorded at
that iteration and they are never touched again — no gradient, no optimiser state, no
update), and lets the method update the rest. The run ends when every sample is done or
the iteration budget is spent. Methods only say how to turn a gradient into a new motion
(`AttackMethod`), so batching, masking and freezing are written once.

Everything is per sample: the objective is summed over samples (never averaged), so a
sample's update does not depend on what else is in its batch.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch

from attacks.core.methods.losses import attack_success, classification_loss
from attacks.core.methods.numerics import Numerics, RecognizerRunner
from attacks.core.motion import to_model_input


@dataclass
class AttackResult:
    """Per-sample outcome of an attack; every field has the batch as its first axis."""

    adversarial: torch.Tensor  # (N, M, T, V, 3), frozen at the success iteration
    success: torch.Tensor  # (N,) bool, the strategy's own criterion on `adversarial`
    iterations: torch.Tensor  # (N,) int64 updates applied before success (the budget on failure)
    labels_before: torch.Tensor  # (N,) argmax on the original motion
    labels_after: torch.Tensor  # (N,) argmax on the adversarial motion
    probs_before: torch.Tensor  # (N, C) softmax on the original motion
    probs_after: torch.Tensor  # (N, C) softmax on the adversarial motion
    targets: torch.Tensor | None = None  # (N,) SA targets

    def cpu(self) -> "AttackResult":
        return AttackResult(**{f.name: _cpu(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def concatenate(cls, results: list["AttackResult"]) -> "AttackResult":
        out = {}
        for f in fields(cls):
            parts = [getattr(r, f.name) for r in results]
            out[f.name] = None if any(p is None for p in parts) else torch.cat([_cpu(p) for p in parts])
        return cls(**out)


class AttackMethod:
    """How one method turns gradients into new motions; state is indexed by sample.

    `loss(x, idx, lc)` returns the per-sample objective for the active samples `idx` given
    their classification loss; `step(x, grad, idx, iteration)` returns their new motions.
    Both see only samples that are still being attacked.
    """

    def __init__(self, config, originals: torch.Tensor, skeleton, mask: torch.Tensor | None, fps=None):
        # fps: the clips' frame rates, for methods whose losses are per second (SMART's);
        # every method is built with the same arguments (`registry.Method.build`).
        self.config = config
        self.originals = originals
        self.skeleton = skeleton
        self.mask = mask

    def loss(self, x, idx, lc):  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, x, grad, idx, iteration):  # pragma: no cover - interface
        raise NotImplementedError

    def gradient(self, x, idx, lc, active):
        """d objective / d x for the active samples (inactive rows get zero)."""
        objective = self.loss(x, idx, lc)
        grad, = torch.autograd.grad((objective * active.to(objective.dtype)).sum(), x)
        return grad


def run_attack(
    model: torch.nn.Module,
    motions: torch.Tensor,
    labels: torch.Tensor,
    method: AttackMethod,
    strategy: str = "ab",
    top_n: int = 3,
    targets: torch.Tensor | None = None,
    iterations: int = 300,
    mask: torch.Tensor | None = None,
    preprocess: Callable | None = None,
    progress: Callable | None = None,
    early_stop: bool = True,
    margin: float = 0.0,
    accept: Callable | None = None,
    numerics: Numerics | None = None,
) -> AttackResult:
    """Attack a batch (N, M, T, V, 3) in place of `method`; see the module docstring.

    margin: success needs that confidence in logits (`losses.attack_success`).
    accept(motions, rows) -> (K,) bool: a second judge of the samples that just met the
    criterion (e.g. the stored sample, as a user would feed it, through the recognizer's
    public path); a sample it rejects is not frozen and keeps being attacked. It must
    judge with the float32 recognizer when `numerics` is not exact.
    numerics: how the recognizer runs (`numerics.Numerics`; default the exact fp32 path).
    Without `accept`, a fast path's candidate successes are confirmed by the float32
    recognizer before freezing; the returned labels, probabilities and success are the
    float32 recognizer's either way.
    """
    q0 = motions.detach()
    n = q0.shape[0]
    device = q0.device
    perturbable = perturbable_mask(q0, mask)  # (N, M, T)
    keep_fixed = ~perturbable[..., None, None]

    q = q0.clone()
    adversarial = q0.clone()
    done = torch.zeros(n, dtype=torch.bool, device=device)
    used = torch.full((n,), iterations, dtype=torch.int64, device=device)
    logits_before = logits_after = None

    with _frozen(model):
        runner = RecognizerRunner(model, preprocess, numerics, max_batch=n)
        for it in range(iterations + 1):
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            last = it == iterations
            x = q[idx].detach().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                logits = runner(x)
            if logits_before is None:
                logits_before = logits.detach().clone()
                logits_after = logits.detach().clone()
            t_idx = None if targets is None else targets[idx]
            succ = attack_success(logits.detach(), strategy, labels[idx], t_idx, top_n, margin)
            if accept is None and not runner.numerics.exact and not last and bool(succ.any()):
                # The fast path proposes, the float32 recognizer decides: a sample is frozen
                # only when its exact logits meet the criterion too (`accept`, when given,
                # is such a float32 judge already).
                with torch.no_grad():
                    exact = forward_logits(model, q[idx[succ]], preprocess)
                confirmed = attack_success(exact, strategy, labels[idx[succ]], None if t_idx is None else t_idx[succ],
                                           top_n, margin)
                rows = succ.nonzero().squeeze(1)
                succ = succ.clone()
                succ[rows] = confirmed
            if accept is not None and not last and bool(succ.any()):
                verdict = torch.zeros_like(succ)
                verdict[succ] = torch.as_tensor(accept(q[idx[succ]].detach(), idx[succ]), dtype=torch.bool,
                                                device=device)
                succ = verdict
            finished = succ if early_stop else torch.zeros_like(succ)
            if last:
                finished = torch.ones_like(succ)
            if finished.any():
                fin = idx[finished]
                adversarial[fin] = q[fin]
                logits_after[fin] = logits.detach()[finished]
                done[fin] = True
                if not last:
                    used[fin] = it
            if last or bool(finished.all()):
                if progress is not None:
                    progress(it, iterations, int(done.sum()))
                continue
            active = ~finished
            lc = classification_loss(logits, strategy, labels[idx], t_idx)
            grad = method.gradient(x, idx, lc, active)
            a_idx = idx[active]
            new = method.step(x.detach()[active], grad[active], a_idx, it)
            q[a_idx] = torch.where(keep_fixed[a_idx], q0[a_idx], new.detach())
            if progress is not None:
                progress(it + 1, iterations, int(done.sum()))

        if not runner.numerics.exact:
            # What is reported is the recognizer's own float32 verdict, not the fast path's.
            with torch.no_grad():
                logits_before = forward_logits(model, q0, preprocess)
                logits_after = forward_logits(model, adversarial, preprocess)

    success = attack_success(logits_after, strategy, labels, targets, top_n, margin)
    return AttackResult(
        adversarial=adversarial,
        success=success,
        iterations=used,
        labels_before=logits_before.argmax(dim=-1),
        labels_after=logits_after.argmax(dim=-1),
        probs_before=logits_before.softmax(dim=-1),
        probs_after=logits_after.softmax(dim=-1),
        targets=targets,
    )


def forward_logits(model, motions, preprocess=None):
    """Recognizer logits for motions (N, M, T, V, 3); `preprocess` maps motions to motions."""
    x = motions if preprocess is None else preprocess(motions)
    return model(to_model_input(x))


def perturbable_mask(motions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(N, M, T) bool: real frames of persons that exist.

    Padded frames (mask False) and absent persons (all-zero across the clip, as in
    single-body NTU clips) are never perturbed: a perturbation there would make a body
    appear out of nothing.
    """
    present = motions.detach().ne(0).flatten(2).any(dim=2)  # (N, M)
    out = present[:, :, None].expand(motions.shape[0], motions.shape[1], motions.shape[2])
    if mask is not None:
        out = out & mask.bool().to(motions.device)[:, None, :]
    return out


def correctly_classified(model, motions, labels, preprocess=None, batch_size: int = 256, device=None):
    """(N,) bool mask of clips the recognizer gets right: only these are attacked."""
    preds = predict(model, motions, preprocess=preprocess, batch_size=batch_size, device=device)
    return preds == torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).cpu()


@torch.no_grad()
def predict(model, motions, preprocess=None, batch_size: int = 256, device=None) -> torch.Tensor:
    """Argmax labels (N,) on CPU for an array or tensor of motions, in batches."""
    out = []
    with _frozen(model):
        for start in range(0, len(motions), batch_size):
            x = _as_tensor(motions[start:start + batch_size], device)
            out.append(forward_logits(model, x, preprocess).argmax(dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def random_targets(labels, num_classes: int, seed: int = 0) -> torch.Tensor:
    """SA targets drawn uniformly from the classes other than each true label (seeded)."""
    if num_classes < 2:
        raise ValueError("a specified attack needs at least two classes")
    labels = torch.as_tensor(labels).cpu().long()
    g = torch.Generator().manual_seed(int(seed))
    offsets = torch.randint(1, num_classes, labels.shape, generator=g)
    return (labels + offsets) % num_classes


class _frozen:
    """Eval mode and no parameter gradients for the duration of an attack; restored after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.training = self.model.training
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.eval()
        for p, _ in self.flags:
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.model.train(self.training)
        return False


def _as_tensor(x, device=None, dtype=torch.float32):
    t = torch.as_tensor(x)
    if t.is_floating_point():
        t = t.to(dtype)
    return t.to(device) if device is not None else t


def _cpu(x):
    return x.detach().cpu() if torch.is_tensor(x) else x
