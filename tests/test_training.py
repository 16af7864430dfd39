"""The training loop, checkpoints, augmentation and evaluation helpers, on synthetic tensors."""
import math

import numpy as np
import pytest
import torch

from attacks.core.training.evaluation import (accuracy, confusion_matrix, confusion_matrix_figure, predict, top_k,
                                             top_k_accuracy)
from attacks.core.training.loop import BEST_CHECKPOINT, LAST_CHECKPOINT, Augmentation, learning_curve_figure, load_best, train

N_CLASSES = 3
SHAPE = (1, 16, 5, 3)  # M, T, V, xyz


class TinyRecognizer(torch.nn.Module):
    """A few hundred parameters with BatchNorm and dropout, so both states matter for resuming."""

    def __init__(self, num_classes=N_CLASSES, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=(3, 1), padding=(1, 0))
        self.bn = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.2)
        self.fc = torch.nn.Linear(8 * SHAPE[2], num_classes)

    def forward(self, x):  # (N, 3, T, V, M)
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        x = torch.relu(self.bn(self.conv(x))).mean(dim=2).reshape(n, m, -1).mean(1)
        return self.fc(self.drop(x))


def _synthetic(n, seed, flip=False):
    """Class k moves joint k along x; noise elsewhere. `flip` relabels class k as k+1 (mod C)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    X = rng.normal(0, 0.1, (n, *SHAPE)).astype(np.float32)
    t = np.linspace(0, 2 * np.pi, SHAPE[1], dtype=np.float32)
    X[np.arange(n), 0, :, y, 0] += np.sin(t)[None] * 1.5
    return X, ((y + 1) % N_CLASSES if flip else y)


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_lowers_the_loss_and_fits_separable_data():
    torch.set_num_threads(1)
    model = TinyRecognizer()
    res = train(model, _synthetic(96, 0), _synthetic(48, 1), epochs=8, batch_size=16, lr=0.1,
                weight_decay=0.0, seed=0, augment=False, progress=False, warmup_epochs=1)
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < 0.5 * losses[0]
    assert res.best_val_acc >= 0.9
    assert len(res.history) == 8
    assert {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"} <= res.history[0].keys()


def test_best_checkpoint_is_the_best_validation_epoch_not_the_last(tmp_path):
    # Validation labels are the training labels shifted by one class: the better the
    # model fits the training set, the worse it does on validation, so the last epoch
    # is the worst and an early one must be kept.
    model = TinyRecognizer()
    X, y = _synthetic(96, 0)
    res = train(model, (X, y), (X, (y + 1) % N_CLASSES), epochs=6, batch_size=16, lr=0.01,
                weight_decay=0.0, seed=0, augment=False, progress=False, checkpoint_dir=tmp_path)
    val_acc = [r["val_acc"] for r in res.history]
    assert val_acc[-1] < max(val_acc), "precondition: the last epoch must be worse on validation"
    # Highest validation accuracy; among equals, the lowest validation loss.
    expected = min((r for r in res.history if r["val_acc"] == max(val_acc)), key=lambda r: r["val_loss"])
    assert res.best_epoch == expected["epoch"] < 6
    assert res.best_val_acc == max(val_acc)

    saved = load_best(TinyRecognizer(seed=9), tmp_path)
    assert saved["epoch"] == res.best_epoch
    assert saved["val_acc"] == pytest.approx(max(val_acc))
    # The kept weights reproduce the best epoch's validation accuracy; the last epoch's do not.
    restored = TinyRecognizer(seed=9)
    load_best(restored, tmp_path)
    assert _states_equal(restored.state_dict(), res.model.state_dict())
    assert accuracy(predict(restored, X), (y + 1) % N_CLASSES) == pytest.approx(max(val_acc))
    last = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)
    assert last["epoch"] == 6 and not _states_equal(last["model"], res.best_state)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    data, val = _synthetic(64, 0), _synthetic(24, 1)
    kwargs = dict(epochs=3, batch_size=16, lr=0.05, weight_decay=1e-4, seed=3, progress=False,
                  augment=Augmentation(rotation_deg=20, scale=(0.8, 1.2), crop=(0.7, 1.0)), warmup_epochs=1)

    full = train(TinyRecognizer(seed=1), data, val, checkpoint_dir=tmp_path / "full", **kwargs)

    class Crash(RuntimeError):
        pass

    def crash_after_two(record):
        if record["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        train(TinyRecognizer(seed=1), data, val, checkpoint_dir=tmp_path / "cut", on_epoch_end=crash_after_two,
              **kwargs)
    assert torch.load(tmp_path / "cut" / LAST_CHECKPOINT, weights_only=True)["epoch"] == 2
    # A fresh process would build the model anew; different initial weights prove they are loaded.
    torch.manual_seed(1234)
    resumed = train(TinyRecognizer(seed=2), data, val, checkpoint_dir=tmp_path / "cut", **kwargs)

    assert resumed.resumed_from_epoch == 2
    last_full = torch.load(tmp_path / "full" / LAST_CHECKPOINT, weights_only=True)["model"]
    last_cut = torch.load(tmp_path / "cut" / LAST_CHECKPOINT, weights_only=True)["model"]
    assert _states_equal(last_full, last_cut)
    assert _states_equal(full.model.state_dict(), resumed.model.state_dict())
    assert full.best_epoch == resumed.best_epoch
    strip = [{k: v for k, v in r.items() if k not in ("time_s", "cpu_s")} for r in full.history]
    assert strip == [{k: v for k, v in r.items() if k not in ("time_s", "cpu_s")} for r in resumed.history]


def test_resume_refuses_a_checkpoint_from_another_configuration(tmp_path):
    data = _synthetic(32, 0)
    train(TinyRecognizer(), data, data, epochs=1, batch_size=16, lr=0.05, seed=0, progress=False,
          augment=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different training configuration"):
        train(TinyRecognizer(), data, data, epochs=1, batch_size=16, lr=0.01, seed=0, progress=False,
              augment=False, checkpoint_dir=tmp_path)
    # resume=False starts over instead.
    res = train(TinyRecognizer(), data, data, epochs=1, batch_size=16, lr=0.01, seed=0, progress=False,
                augment=False, checkpoint_dir=tmp_path, resume=False)
    assert res.resumed_from_epoch == 0 and (tmp_path / BEST_CHECKPOINT).exists()


def _ramp(n=4):
    """Motions whose coordinates equal the frame index: easy to read time warps off."""
    X = torch.arange(SHAPE[1], dtype=torch.float32)[None, None, :, None, None].expand(n, 2, SHAPE[1], 5, 3)
    X = X.clone()
    X[:, 1] = 0  # an absent (zero-padded) second person
    return X


def test_augmentation_rotation_about_y_keeps_height_and_radius():
    X = torch.randn(6, 1, 10, 5, 3)
    out = Augmentation(rotation_deg=45, scale=(1, 1), crop=(1, 1))(X, torch.Generator().manual_seed(0))
    assert torch.allclose(out[..., 1], X[..., 1])
    assert torch.allclose(out[..., [0, 2]].norm(dim=-1), X[..., [0, 2]].norm(dim=-1), atol=1e-5)
    assert not torch.allclose(out, X)


def test_augmentation_scale_crop_keep_padding_and_are_seeded():
    X = _ramp()
    aug = Augmentation(rotation_deg=0, scale=(2, 2), crop=(1, 1))
    assert torch.allclose(aug(X, torch.Generator().manual_seed(0)), 2 * X)

    aug = Augmentation(rotation_deg=0, scale=(1, 1), crop=(0.7, 0.9))
    out = aug(X, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 1], torch.zeros_like(out[:, 1]))  # padding stays zero
    steps = out[:, 0, 1:, 0, 0] - out[:, 0, :-1, 0, 0]  # a uniform, slower ramp inside the clip
    assert torch.allclose(steps, steps[:, :1].expand_as(steps), atol=1e-4)
    assert ((steps[:, 0] >= 0.7 - 1e-5) & (steps[:, 0] <= 0.9 + 1e-5)).all()
    assert (out[:, 0, 0, 0, 0] >= 0).all() and (out[:, 0, -1, 0, 0] <= SHAPE[1] - 1 + 1e-5).all()
    assert torch.equal(out, aug(X, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, aug(X, torch.Generator().manual_seed(1)))


def test_predict_returns_probabilities_and_restores_training_mode():
    model = TinyRecognizer()
    model.train()
    X, _ = _synthetic(10, 0)
    probs = predict(model, X, batch_size=4)
    assert probs.shape == (10, N_CLASSES)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
    assert model.training
    # Batching does not change the result (eval mode: no dropout, running BatchNorm statistics).
    assert np.allclose(probs, predict(model, X, batch_size=10), atol=1e-6)


def test_accuracy_top_k_and_confusion_matrix_count_correctly():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    y = np.array([1, 1, 2, 2])
    assert accuracy(scores, y) == 0.5
    assert np.array_equal(top_k(scores, 2), [[1, 2], [0, 1], [2, 1], [0, 2]])
    assert top_k_accuracy(scores, y, 2) == 1.0
    assert top_k_accuracy(scores, y, 1) == accuracy(scores, y)
    cm = confusion_matrix(y, scores, num_classes=3)
    assert cm.tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert cm.sum() == len(y) and np.trace(cm) == 2


def test_figures_are_written(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 1 - 1 / (e + 1),
                "val_acc": 0.9 - abs(e - 3) * 0.1} for e in range(1, 6)]
    curve = learning_curve_figure(history, tmp_path / "curve.png")
    cm = confusion_matrix_figure(np.array([[5, 1], [0, 4]]), ["walk", "sit"], tmp_path / "sub" / "cm.png")
    for path in (curve, cm):
        assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"
    assert math.isclose(history[2]["val_acc"], 0.9)


def test_cpu_presets_split_into_model_and_train_keywords():
    import inspect

    from attacks.core.recognizers import ARCHITECTURES
    from attacks.core.training.loop import CPU_PRESETS, MODEL_KEYS, split_preset

    train_params = inspect.signature(train).parameters
    assert set(CPU_PRESETS) == set(ARCHITECTURES)
    for arch, preset in CPU_PRESETS.items():
        model_kwargs, train_kwargs = split_preset(preset)
        assert set(model_kwargs) <= set(MODEL_KEYS) and "width" in model_kwargs, arch
        assert set(train_kwargs) <= set(train_params) and "epochs" in train_kwargs, arch
        assert {**model_kwargs, **train_kwargs} == preset


def test_a_registry_recognizer_trains_through_the_loop():
    # ST-GCN from the registry at width 8 and two blocks: the real input layout and
    # BatchNorm-over-joints path, kept tiny so the test stays fast.
    from attacks.core.recognizers import build_recognizer
    from attacks.core.skeletons import get_skeleton

    torch.set_num_threads(1)
    skeleton = get_skeleton("ntu25")
    rng = np.random.default_rng(0)
    y = rng.integers(0, N_CLASSES, 48)
    X = rng.normal(0, 0.05, (48, 1, 12, skeleton.num_joints, 3)).astype(np.float32)
    # Class k: the whole body sways along axis k (pooled GCN features can tell these apart).
    X[np.arange(48), 0, :, :, y] += 0.5 * np.sin(np.linspace(0, 2 * np.pi, 12, dtype=np.float32))[None, :, None]
    torch.manual_seed(0)
    model = build_recognizer("stgcn", skeleton, N_CLASSES, num_persons=1, num_frames=12, width=8, num_blocks=2)
    res = train(model, (X, y), (X[:12], y[:12]), epochs=4, batch_size=16, lr=0.1, seed=0, progress=False,
                augment=Augmentation(rotation_deg=10, crop=(0.9, 1.0)))
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < 0.5 * losses[0], losses
    assert predict(res.model, X[:5]).shape == (5, N_CLASSES)
