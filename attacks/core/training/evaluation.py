"""How well a recognizer classifies: probabilities, accuracies, confusion matrices, figures.

Training (validation each epoch), the `classify` command and the robustness reports all
score a model the same way, through these functions. Inputs are motion batches
(N, M, T, V, 3) as stored; the layout change to the recognizer's (N, 3, T, V, M) happens
here, batch by batch, on the requested device, so a whole dataset never has to fit on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attacks.core.motion import to_model_input
from attacks.core.reporting.figures import pyplot, save_figure


@torch.no_grad()
def predict_logits(model: torch.nn.Module, X, batch_size: int = 64, device="cpu") -> torch.Tensor:
    """Raw scores (N, C) on the CPU, with the model in eval mode (its mode is restored after).

    X: an array or tensor, or a source too large for memory that yields batches when sliced
    (`attacks.services.clip_cache.ClipInputs`); either way the model sees the same batches.
    """
    if torch.is_tensor(X) or isinstance(X, (np.ndarray, list, tuple)):
        X = torch.as_tensor(X, dtype=torch.float32)
    if len(X.shape) != 5 or X.shape[-1] != 3:
        raise ValueError(f"expected motions of shape (N, M, T, V, 3), got {tuple(X.shape)}")
    was_training = model.training
    model.eval()
    try:
        out = [model(to_model_input(torch.as_tensor(X[i:i + batch_size]).to(device))).float().cpu()
               for i in range(0, len(X), batch_size)]
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("no motions to classify")
    return torch.cat(out)


def predict(model: torch.nn.Module, X, batch_size: int = 64, device="cpu") -> np.ndarray:
    """Class probabilities (N, C), softmax of the model's logits, as a float64 numpy array."""
    logits = predict_logits(model, X, batch_size=batch_size, device=device)
    return torch.softmax(logits.double(), dim=1).numpy()


def accuracy(scores, y) -> float:
    """Fraction of rows whose highest score is the true class (scores: (N, C) or predictions (N,))."""
    pred = _as_predictions(scores)
    y = np.asarray(y)
    if len(pred) != len(y):
        raise ValueError(f"{len(pred)} predictions for {len(y)} labels")
    return float(np.mean(pred == y)) if len(y) else float("nan")


def top_k(scores, k: int) -> np.ndarray:
    """Indices (N, k) of the k highest-scoring classes per row, best first."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_k_accuracy(scores, y, k: int) -> float:
    """Fraction of rows whose true class is among the k highest scores."""
    y = np.asarray(y)
    return float(np.mean((top_k(scores, k) == y[:, None]).any(axis=1))) if len(y) else float("nan")


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class. `y_pred` may be scores (N, C)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = _as_predictions(y_pred).astype(np.int64)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def confusion_matrix_figure(cm, class_names, path, normalise: bool = True, title: str | None = None) -> Path:
    """Save a confusion-matrix heat map (rows normalised to recall unless told otherwise)."""
    plt = pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    ax.set_xticks(range(n), labels=class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="recall" if normalise else "count")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def _as_predictions(scores) -> np.ndarray:
    scores = np.asarray(scores)
    return scores.argmax(axis=1) if scores.ndim == 2 else scores

