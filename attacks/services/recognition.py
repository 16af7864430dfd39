"""Recognizers as database records: stored splits, training runs, loading, and model inputs.

The numerical work lives in `training`, `evaluation` and `recognizers`; this module
decides what a recognizer sees (the input spec), keeps the split it was trained on, and
records results, so that attacks and reports later feed a model exactly what it was
trained on and map adversarial motions back to world units.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import transaction

from attacks.services import clip_cache

from attacks.core.data import preprocessing

from attacks.core.data import protocol_view
from attacks.core.errors import AttacksError
from attacks.core.training.evaluation import confusion_matrix, confusion_matrix_figure, predict
from attacks.models import Dataset, DatasetSplit, Recognizer
from attacks.core.data.protocol_view import ModelInputs
from attacks.core.recognizers import build_recognizer
from attacks.core.data.splits import PROTOCOLS as PROTOCOL_SPLITS
from attacks.core.data.splits import protocol_split, stratified_split
from attacks.core.training.loop import CPU_PRESETS, learning_curve_figure, load_best, split_preset, train


class RecognitionError(AttacksError):
    """Raised with a message meant for the person running the command."""


# ---- what a recognizer sees ------------------------------------------------------------

def default_input_spec(dataset: Dataset, num_frames: int | None = None, num_persons: int | None = None) -> dict:
    """The model's input size and the protocol whose view (`attacks.core.data.protocol_view`) it is trained on."""
    clips = dataset.clips.all()
    if num_persons is None:
        num_persons = max(clips.values_list("num_persons", flat=True), default=1)
    if num_frames is None:
        frames = np.array(list(clips.values_list("num_frames", flat=True)))
        num_frames = int(frames.max()) if dataset.protocol != "raw" else 64
    return {"num_frames": int(num_frames), "num_persons": int(num_persons), "protocol": dataset.protocol}


def view_protocol(record: Recognizer) -> str:
    """The protocol a recognizer's inputs are normalised by (records made before it was
    stored in the input spec take their dataset's)."""
    return record.input_spec.get("protocol") or record.dataset.protocol


def world_motion(clip) -> np.ndarray:
    """A stored clip in world units (M, T, V, 3): the import protocol's rigid transform undone,
    its padding kept (the frames a recognizer was trained on)."""
    return preprocessing.to_world(clip.motion(), clip.meta.get("world"), crop=False)


def model_inputs(clips, skeleton, spec: dict, fps: float, protocol: str) -> ModelInputs:
    """Clips (Clip rows) -> world-unit motions at the model's size and the batch the model sees."""
    return protocol_view.model_inputs([world_motion(c) for c in clips], skeleton, spec["num_frames"],
                                      spec["num_persons"], fps, protocol)


def recognizer_inputs(record: Recognizer, motions) -> np.ndarray:
    """World-unit motions (a list of (M, T, V, 3)) -> the batch `record` takes, by its own protocol.

    The one path by which `classify`, `transfer_samples`, the attacks' after-storage
    check and the reports feed motions to a recognizer.
    """
    spec = record.input_spec
    return protocol_view.recognizer_inputs(motions, view_protocol(record), record.dataset.get_skeleton(),
                                           spec["num_frames"], spec["num_persons"])


# ---- splits ----------------------------------------------------------------------------

# Formats whose datasets come with a published split; every other dataset is split at random.
PROTOCOL_SPLIT_OF_FORMAT = {"ntu": "ntu-xsub"}
SPLIT_META_KEYS = ("performer", "subject", "camera", "class_id", "label")  # what `protocol_split` reads


def default_split_method(dataset: Dataset) -> str:
    """The dataset's own protocol split where it has one (NTU: cross-subject), else stratified.

    Results on NTU RGB+D are only comparable with the literature on its published split,
    so that is what a recognizer gets unless the caller asks for another.
    """
    return PROTOCOL_SPLIT_OF_FORMAT.get(dataset.format, "stratified")


def get_or_create_split(dataset: Dataset, method: str = "stratified", val_fraction: float = 0.1,
                        test_fraction: float = 0.2, seed: int = 0) -> DatasetSplit:
    """The same arguments always give the same stored split (and so the same test set).

    Clips cut from one source file (the windows of the `smart` protocol) are kept in one
    part; such a split is named `...-by-source`.
    """
    if method == "stratified":
        name = f"stratified-v{val_fraction:g}-t{test_fraction:g}-s{seed}"
    elif method in PROTOCOL_SPLITS:
        name = f"{method}-v{val_fraction:g}-s{seed}"
    else:
        raise RecognitionError(f"unknown split {method!r}: use stratified or one of {', '.join(PROTOCOL_SPLITS)}")
    # A take holding segments of several classes (a long BVH with labelled ranges) is split
    # per class segment: the windows of one segment still stay together.
    sources = [f"{source}|{label}" for source, label in
               dataset.clips.order_by("index").values_list("source", "label")]
    groups = sources if len(set(sources)) < len(sources) else None
    if groups is not None:
        name += "-by-source"
    existing = DatasetSplit.objects.filter(dataset=dataset, name=name).first()
    if existing:
        return existing
    rows = list(dataset.clips.order_by("index").values_list("index", "label"))
    labels = np.array([r[1] for r in rows])
    try:
        if method == "stratified":
            parts = stratified_split(labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                                     groups=groups)
        else:
            # Only the keys a protocol split reads: an `ntu` clip's meta also holds its per-frame
            # world transform, which for a whole dataset would not fit in memory.
            metas = [{k: m[k] for k in SPLIT_META_KEYS if k in m} for m in
                     dataset.clips.order_by("index").values_list("meta", flat=True).iterator(chunk_size=500)]
            parts = protocol_split(metas, protocol=method, val_fraction=val_fraction, seed=seed,
                                   labels=labels, groups=groups)
    except (KeyError, ValueError) as e:
        raise RecognitionError(f"dataset {dataset.name!r} cannot use split {method!r}: {e}") from e
    index_of = np.array([r[0] for r in rows])
    return DatasetSplit.objects.create(
        dataset=dataset, name=name, method=method, seed=seed,
        parameters={"val_fraction": val_fraction, "test_fraction": test_fraction, "by_source": groups is not None},
        **{k: index_of[v].tolist() for k, v in parts.items()})


def split_clips(split: DatasetSplit, part: str):
    return list(split.dataset.clips.filter(index__in=split.indices(part)).order_by("index"))


# ---- training --------------------------------------------------------------------------

def recognizer_dir(name: str) -> Path:
    return Path(settings.DATA_DIR) / "recognizers" / name


def train_recognizer(dataset: Dataset, arch: str, name: str, *, epochs=None, batch_size=None, lr=None,
                     width=None, device="cpu", seed=0, val_fraction=0.1, test_fraction=0.2,
                     split_method=None, num_frames=None, progress=True) -> Recognizer:
    """Train (or resume training) a recognizer and record it; the test split is used only at the end.

    `split_method=None` takes the dataset's default (`default_split_method`).
    """
    model_kwargs, hyper = split_preset(dict(CPU_PRESETS.get(arch, {})))
    hyper.update({k: v for k, v in dict(epochs=epochs, batch_size=batch_size, lr=lr).items() if v is not None})
    hyper.setdefault("epochs", 30)
    hyper["seed"] = seed
    if width is not None:  # 0 asks for the published width
        model_kwargs["width"] = width or None
    preset_frames = model_kwargs.pop("num_frames", None)
    if num_frames is None and dataset.protocol == "raw":
        num_frames = preset_frames
    split = get_or_create_split(dataset, split_method or default_split_method(dataset), val_fraction,
                                test_fraction, seed)
    spec = default_input_spec(dataset, num_frames=num_frames)
    config = {"arch": arch, "model": model_kwargs, **hyper, "split": split.name, "input": spec}

    record = Recognizer.objects.filter(name=name).first()
    if record is not None and (record.status == Recognizer.Status.READY or record.hyperparameters != config
                               or record.dataset_id != dataset.id):
        raise RecognitionError(f"a recognizer named {name!r} already exists ({record.status}, "
                               f"{record.arch} on {record.dataset.name}); choose another --name")
    skeleton = dataset.get_skeleton()
    try:
        model = build_recognizer(arch, skeleton, dataset.num_classes, num_persons=spec["num_persons"],
                                 num_frames=spec["num_frames"], **model_kwargs)
    except ValueError as e:
        raise RecognitionError(str(e)) from e
    # Checked before the record exists, so an unusable split leaves no half-made recognizer behind.
    # Each part is streamed from the dataset's clip cache batch by batch (bounded memory).
    data = {part: _streamed(dataset, split, part, spec) for part in ("train", "val", "test")}
    if len(data["train"][1]) == 0 or len(data["val"][1]) == 0:
        raise RecognitionError(f"split {split.name} leaves no training or validation clips")
    if record is None:
        record = Recognizer.objects.create(
            name=name, arch=arch, dataset=dataset, split=split, hyperparameters=config, input_spec=spec,
            checkpoint=str(Path("recognizers") / name / "best.pt"),
            num_parameters=sum(p.numel() for p in model.parameters()))

    def on_epoch_end(rec):
        Recognizer.objects.filter(pk=record.pk).update(epochs_trained=rec["epoch"])

    out_dir = recognizer_dir(name)
    train_kwargs = {k: v for k, v in hyper.items() if k != "epochs"}
    result = train(model, data["train"], data["val"], epochs=hyper["epochs"], device=device,
                   checkpoint_dir=out_dir, progress=progress, on_epoch_end=on_epoch_end,
                   metadata={"arch": arch, "model": model_kwargs, "class_names": dataset.class_names, "input": spec},
                   **train_kwargs)

    model = result.model
    probs = {part: predict(model, data[part][0], device=device) if len(data[part][1])
             else np.zeros((0, dataset.num_classes)) for part in ("train", "val", "test")}
    acc = {part: float((probs[part].argmax(1) == data[part][1]).mean()) if len(data[part][1]) else None
           for part in probs}
    cm = confusion_matrix(data["test"][1], probs["test"].argmax(1), dataset.num_classes) \
        if len(data["test"][1]) else np.zeros((dataset.num_classes,) * 2, dtype=int)
    rel = Path("recognizers") / name
    learning_curve_figure(result.history, out_dir / "learning_curve.png", title=f"{arch} on {dataset.name}")
    confusion_matrix_figure(cm, dataset.class_names, out_dir / "confusion.png", title=f"{name}: test split")
    with transaction.atomic():
        record.refresh_from_db()
        record.status = Recognizer.Status.READY
        record.epochs_trained = result.epochs_completed
        record.best_epoch = result.best_epoch
        record.train_accuracy, record.val_accuracy, record.test_accuracy = acc["train"], acc["val"], acc["test"]
        record.history = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                          for r in result.history]
        record.confusion = cm.tolist()
        record.learning_curve = str(rel / "learning_curve.png")
        record.confusion_figure = str(rel / "confusion.png")
        record.save()
    return record


def _streamed(dataset, split, part, spec):
    """(`ClipInputs` of a split part in index order, its labels): what training reads."""
    inputs = clip_cache.split_inputs(dataset, sorted(split.indices(part)), spec, dataset.protocol)
    return inputs, inputs.labels


def load_model(record: Recognizer, device="cpu") -> torch.nn.Module:
    """The recognizer's best-validation weights, in eval mode, on `device`."""
    if record.status != Recognizer.Status.READY:
        raise RecognitionError(f"recognizer {record.name!r} is not trained yet (status {record.status})")
    spec = record.input_spec
    model = build_recognizer(record.arch, record.dataset.get_skeleton(), record.dataset.num_classes,
                             num_persons=spec["num_persons"], num_frames=spec["num_frames"],
                             **record.hyperparameters.get("model", {}))
    path = Path(settings.DATA_DIR) / record.checkpoint
    if not path.exists():
        raise RecognitionError(f"checkpoint of {record.name!r} is missing: {path}")
    load_best(model, path.parent)
    return model.to(device).eval()
