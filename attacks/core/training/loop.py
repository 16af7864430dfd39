"""Training a recognizer: the loop, the checkpoints, the augmentation.

Attacks are only as meaningful as the recognizers they fool, so every recognizer in the
project is trained by this one loop and selected the same way: the weights kept are
those of the epoch with the best *validation* accuracy (the test split is never looked
at here). A checkpoint of the whole training state is written after every epoch, so a
run stopped by a crash, a deploy or a full disk resumes where it left off and ends with
the same weights it would have had uninterrupted.

Django-free: the `train_recognizer` command (or a script) loads motions, builds a model
from `attacks.core.recognizers` and calls `train`.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from attacks.core.data.protocol_view import rotation_about_y
from attacks.core.motion import to_model_input
from attacks.core.progress import note, steps
from attacks.core.recognizers import cpu_presets
from attacks.core.reporting.figures import pyplot, save_figure
from attacks.core.training.evaluation import predict_logits

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
CHECKPOINT_FORMAT = 1

# Each architecture's reduced-width settings, declared beside its class (`CPU_PRESET`).
CPU_PRESETS: dict[str, dict] = cpu_presets()
MODEL_KEYS = ("width", "num_frames", "num_blocks", "dropout", "streams")


def split_preset(preset: dict) -> tuple[dict, dict]:
    """(model constructor keywords, train() keywords) of a CPU_PRESETS entry."""
    model = {k: v for k, v in preset.items() if k in MODEL_KEYS}
    return model, {k: v for k, v in preset.items() if k not in MODEL_KEYS}


@dataclass
class Augmentation:
    """Random, label-preserving changes to skeleton batches that help on small datasets.

    Applied per sample, vectorised over the batch, on the batch's device, with random
    numbers drawn from the training generator (so runs are reproducible and resumable):
    a rotation about the vertical (y) axis, an isotropic scale, and a temporal crop of
    `crop` of the frames at a random start, linearly resampled back to T frames (a small
    time shift and speed change). All three keep all-zero padding persons at zero.
    """
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    crop: tuple[float, float] = (0.85, 1.0)

    def __call__(self, X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        N, M, T, V, C = X.shape
        u = torch.rand(N, 4, generator=generator, dtype=torch.float64)
        angle = (2 * u[:, 0] - 1) * math.radians(self.rotation_deg)
        scale = self.scale[0] + u[:, 1] * (self.scale[1] - self.scale[0])
        keep = self.crop[0] + u[:, 2] * (self.crop[1] - self.crop[0])
        start = u[:, 3] * (1 - keep) * (T - 1)

        rot = rotation_about_y(torch.cos(angle), torch.sin(angle))
        rot = (rot * scale[:, None, None]).to(device=X.device, dtype=X.dtype)
        X = torch.einsum("nij,nmtvj->nmtvi", rot, X)

        if T > 1 and self.crop[0] < 1:
            # Frame k of the output samples the input at start + k * keep * (T-1) / (T-1).
            pos = start[:, None] + torch.arange(T, dtype=torch.float64)[None] * keep[:, None]
            pos = pos.clamp(0, T - 1)
            lo = pos.floor().long().clamp(max=T - 2)
            w = (pos - lo).to(device=X.device, dtype=X.dtype)[:, None, :, None, None]
            lo = lo.to(X.device)[:, None, :, None, None].expand(N, M, T, V, C)
            X = torch.gather(X, 2, lo) * (1 - w) + torch.gather(X, 2, lo + 1) * w
        return X


@dataclass
class TrainResult:
    """What a run produced; `model` holds the best-validation weights."""
    model: torch.nn.Module
    history: list[dict]
    best_epoch: int
    best_val_acc: float
    best_val_loss: float
    epochs_completed: int
    train_time_s: float  # wall seconds over all epochs, including those before a resume
    train_cpu_s: float = 0.0  # process CPU seconds (all threads), robust to a busy machine
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    resumed_from_epoch: int = 0
    best_state: dict = field(default_factory=dict, repr=False)


def train(model: torch.nn.Module, train_data, val_data, *, epochs: int, batch_size: int = 16,
          lr: float = 0.05, weight_decay: float = 5e-4, device="cpu", seed: int = 0,
          checkpoint_dir=None, augment: bool | Augmentation | None = True,
          optimizer: str = "sgd", momentum: float = 0.9, schedule: str = "cosine",
          warmup_epochs: int = 0, lr_steps: tuple[int, ...] = (), label_smoothing: float = 0.0,
          grad_clip: float | None = None, progress: bool = True, resume: bool = True,
          metadata: dict | None = None,
          on_epoch_end: Callable[[dict], None] | None = None) -> TrainResult:
    """Train `model` on `train_data` = (X (N, M, T, V, 3) float32, y (N,) int) and keep the best epoch.

    - optimizer: "sgd" (momentum, Nesterov; what the GCN papers use) or "adam" (RNNs, SGN).
    - schedule: "cosine" (to zero at the last step) or "step" (x0.1 at each epoch in
      `lr_steps`), both after a linear warm-up of `warmup_epochs`; updated every step.
    - checkpoint_dir: `last.pt` (full training state, written after every epoch) and
      `best.pt` (best-validation weights). With `resume`, a matching `last.pt` there is
      continued from; one written by a different configuration is an error, not a restart.
    - on_epoch_end(record) runs after the epoch's checkpoint is written (progress
      reporting; raising from it stops training, and a later call resumes).
    - metadata (JSON-like: arch, width, class names, ...) is stored in both checkpoints.
    Randomness (batch order, augmentation, dropout) is seeded by `seed` and saved in
    `last.pt`, so an interrupted and resumed run equals an uninterrupted one.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if schedule not in ("cosine", "step"):
        raise ValueError(f"schedule must be 'cosine' or 'step', got {schedule!r}")
    X_train, y_train = _as_tensors(train_data, "train_data")
    X_val, y_val = _as_tensors(val_data, "val_data") if val_data is not None else (None, None)
    if augment is True:
        augment = Augmentation()
    device = torch.device(device)
    model.to(device)

    batches_per_epoch = _num_batches(len(X_train), batch_size)
    opt = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_factor(schedule, warmup_epochs * batches_per_epoch, epochs * batches_per_epoch,
                        [s * batches_per_epoch for s in lr_steps]))
    fingerprint = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                       optimizer=optimizer, momentum=momentum, schedule=schedule, warmup_epochs=warmup_epochs,
                       lr_steps=list(lr_steps), label_smoothing=label_smoothing,
                       augment=asdict(augment) if augment else None,
                       n_train=len(X_train), n_val=0 if X_val is None else len(X_val),
                       model=type(model).__name__, num_params=sum(p.numel() for p in model.parameters()))
    fingerprint["augment"] = {k: list(v) if isinstance(v, tuple) else v for k, v in (fingerprint["augment"] or {}).items()} or None
    metadata = dict(metadata or {})

    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best = {"epoch": 0, "val_acc": -1.0, "val_loss": math.inf}
    best_state = _cpu_state(model)
    start_epoch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / LAST_CHECKPOINT if ckpt_dir else None
    best_path = ckpt_dir / BEST_CHECKPOINT if ckpt_dir else None

    if last_path is not None and resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
            raise ValueError(f"{last_path} was written by a different training configuration; "
                             f"delete {ckpt_dir} or pass resume=False to start over")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], generator)
        history, best, start_epoch = list(state["history"]), dict(state["best"]), int(state["epoch"])
        best_state = torch.load(best_path, map_location="cpu", weights_only=True)["model"] \
            if best_path.exists() else _cpu_state(model)
    else:
        torch.manual_seed(seed)  # dropout and any other draw from the global generator
        random.seed(seed)

    resumed_from = start_epoch
    for epoch in range(start_epoch + 1, epochs + 1):
        started, cpu_started = time.perf_counter(), time.process_time()
        train_loss, train_acc = _train_one_epoch(model, opt, scheduler, X_train, y_train, batch_size, device,
                                                 generator, augment, label_smoothing, grad_clip,
                                                 progress, f"epoch {epoch}/{epochs}")
        record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                  "val_loss": math.nan, "val_acc": math.nan, "lr": opt.param_groups[0]["lr"]}
        if X_val is not None and len(X_val):
            logits = predict_logits(model, X_val, batch_size=max(batch_size, 64), device=device)
            record["val_loss"] = float(F.cross_entropy(logits, y_val))
            record["val_acc"] = float((logits.argmax(1) == y_val).double().mean())
        # Wall time depends on what else runs on the machine; CPU time (all threads) does not.
        record["time_s"] = time.perf_counter() - started
        record["cpu_s"] = time.process_time() - cpu_started
        history.append(record)

        if X_val is None or not len(X_val) or _better(record, best):
            best = {"epoch": epoch, "val_acc": record["val_acc"], "val_loss": record["val_loss"]}
            best_state = _cpu_state(model)
            if best_path is not None:
                _atomic_save({"format": CHECKPOINT_FORMAT, "model": best_state, **best,
                              "fingerprint": fingerprint, "metadata": metadata}, best_path)
        if last_path is not None:
            _atomic_save({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "metadata": metadata,
                          "epoch": epoch, "model": _cpu_state(model), "optimizer": opt.state_dict(),
                          "scheduler": scheduler.state_dict(), "rng": _rng_state(generator),
                          "history": history, "best": best}, last_path)
        if progress:
            note(f"epoch {epoch}/{epochs}: train loss {train_loss:.3f} acc {train_acc:.3f} | "
                       f"val loss {record['val_loss']:.3f} acc {record['val_acc']:.3f}"
                       + (" *" if best["epoch"] == epoch else ""))
        if on_epoch_end is not None:
            on_epoch_end(record)

    model.load_state_dict(best_state)
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], best_val_acc=best["val_acc"],
                       best_val_loss=best["val_loss"], epochs_completed=len(history),
                       train_time_s=float(sum(r["time_s"] for r in history)),
                       train_cpu_s=float(sum(r.get("cpu_s", 0.0) for r in history)),
                       best_checkpoint=best_path, last_checkpoint=last_path,
                       resumed_from_epoch=resumed_from, best_state=best_state)


def load_best(model: torch.nn.Module, checkpoint_dir) -> dict:
    """Load `best.pt` from a training directory into `model`; returns the checkpoint's record."""
    state = torch.load(Path(checkpoint_dir) / BEST_CHECKPOINT, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return {k: v for k, v in state.items() if k != "model"}


def learning_curve_figure(history: list[dict], path, title: str | None = None) -> Path:
    """Save loss and accuracy per epoch (train vs validation) side by side; the best epoch marked."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], label="train")
        ax.plot(epochs, [r[f"val_{key}"] for r in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy" if key == "loss" else "accuracy")
        ax.grid(alpha=0.3)
    val_acc = [r["val_acc"] for r in history]
    if history and not all(math.isnan(v) for v in val_acc):
        best = int(np.nanargmax(val_acc))
        ax_acc.axvline(epochs[best], color="grey", ls="--", lw=1, label=f"best (epoch {epochs[best]})")
    ax_acc.set_ylim(0, 1.02)
    ax_acc.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


# --- the loop's parts ---------------------------------------------------------------

def _train_one_epoch(model, opt, scheduler, X, y, batch_size, device, generator, augment,
                     label_smoothing, grad_clip, progress, desc):
    model.train()
    order = torch.randperm(len(X), generator=generator)
    batches = _batch_indices(order, batch_size)
    total_loss, correct, seen = 0.0, 0, 0
    bar = steps(batches, desc, "batch", enabled=progress, leave=False, log_steps=False)
    for idx in bar:
        xb, yb = X[idx].to(device), y[idx].to(device)
        if augment:
            xb = augment(xb, generator)
        logits = model(to_model_input(xb))
        loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        scheduler.step()
        n = len(idx)
        total_loss += float(loss.detach()) * n
        correct += int((logits.detach().argmax(1) == yb).sum())
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return total_loss / seen, correct / seen


def _batch_indices(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive chunks; a last chunk of one sample joins the previous (BatchNorm needs two)."""
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _num_batches(n: int, batch_size: int) -> int:
    if n == 0:
        raise ValueError("train_data is empty")
    return len(_batch_indices(torch.arange(n), batch_size))


def _lr_factor(schedule: str, warmup_steps: int, total_steps: int, step_milestones: list[int]):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "cosine":
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return 0.1 ** sum(step >= m for m in step_milestones)
    return factor


def _make_optimizer(model, name, lr, weight_decay, momentum):
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay) if weight_decay else \
        torch.optim.Adam(params, lr=lr)


def _better(record: dict, best: dict) -> bool:
    """Higher validation accuracy wins; a tie goes to the lower validation loss."""
    if record["val_acc"] != best["val_acc"]:
        return record["val_acc"] > best["val_acc"]
    return record["val_loss"] < best["val_loss"]


def _as_tensors(data, name):
    """(X, y) as tensors; an X too large for memory (a `torch.utils.data.Dataset` whose
    indexing by a tensor of positions returns that batch, `attacks.services.clip_cache.ClipInputs`)
    is kept as it is and read batch by batch."""
    try:
        X, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (X, y)") from None
    if not isinstance(X, torch.utils.data.Dataset):
        X = torch.as_tensor(np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X,
                            dtype=torch.float32).cpu()
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y, dtype=torch.long).cpu()
    if len(X.shape) != 5 or X.shape[-1] != 3:
        raise ValueError(f"{name}: X must be (N, M, T, V, 3), got {tuple(X.shape)}")
    if len(X) != len(y):
        raise ValueError(f"{name}: {len(X)} motions but {len(y)} labels")
    return X, y


def _cpu_state(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _rng_state(generator: torch.Generator) -> dict:
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state(),
             "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    internal = tuple(int(v) for v in state["python"])
    random.setstate((3, internal, None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj, path: Path) -> None:
    """Write to a temporary file and rename, so a crash mid-write never leaves a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
