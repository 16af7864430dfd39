"""Database records of the attack backend: datasets and their clips, recognizers,
generation runs and the adversarial samples they produce.

Motions are stored as raw float32 bytes beside their shape, so a clip round-trips
bit-exactly and the numerical core never sees the ORM.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
from django.db import models

from attacks.core.data import preprocessing, readers
from attacks.core.data.labels import label_name
from attacks.core.skeletons import Skeleton


def motion_to_bytes(motion: np.ndarray) -> bytes:
    return np.ascontiguousarray(motion, dtype="<f4").tobytes()


def motion_from_bytes(data: bytes, shape) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f4").reshape(shape).copy()


class Dataset(models.Model):
    FORMATS = [(f, f) for f in readers.FORMATS]
    PROTOCOLS = [(p, p) for p in preprocessing.PROTOCOLS]

    name = models.SlugField(max_length=100, unique=True)
    format = models.CharField(max_length=20, choices=FORMATS)
    protocol = models.CharField(max_length=20, choices=PROTOCOLS, default="raw")
    source_path = models.TextField(help_text="What the importer was pointed at.")
    skeleton = models.JSONField(help_text="Skeleton definition (joints, parents, spine, parts).")
    fps = models.FloatField()
    class_names = models.JSONField(default=list, help_text="Label index -> class name.")
    options = models.JSONField(default=dict, blank=True, help_text="Reader and protocol options.")
    stats = models.JSONField(default=dict, blank=True, help_text="Protocol statistics, e.g. windows dropped.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_skeleton(self) -> Skeleton:
        return Skeleton.from_dict(self.skeleton, source=f"dataset {self.name}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, int]:
        counts = dict(self.clips.values_list("label").annotate(n=models.Count("id")).order_by("label"))
        return {name: counts.get(i, 0) for i, name in enumerate(self.class_names)}


class Clip(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="clips")
    index = models.PositiveIntegerField(help_text="Position within the dataset (export order).")
    label = models.PositiveIntegerField()
    source = models.CharField(max_length=500, help_text="File the clip came from.")
    frame_start = models.PositiveIntegerField(default=0)
    frame_stop = models.PositiveIntegerField(default=0)
    person_indices = models.JSONField(default=list)
    num_persons = models.PositiveSmallIntegerField()
    num_frames = models.PositiveIntegerField()
    num_joints = models.PositiveSmallIntegerField()
    meta = models.JSONField(default=dict, blank=True, help_text="Performer, camera, world transform, ...")
    data = models.BinaryField(help_text="float32 (M, T, V, 3), metres, y up")

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [models.UniqueConstraint(fields=["dataset", "index"], name="unique_clip_index")]
        indexes = [models.Index(fields=["dataset", "label"])]

    def __str__(self):
        return f"{self.dataset.name}#{self.index} ({self.label_name})"

    @property
    def label_name(self) -> str:
        return label_name(self.dataset.class_names, self.label)

    @property
    def shape(self):
        return (self.num_persons, self.num_frames, self.num_joints, 3)

    def motion(self) -> np.ndarray:
        return motion_from_bytes(self.data, self.shape)

    def set_motion(self, motion: np.ndarray):
        self.num_persons, self.num_frames, self.num_joints, _ = motion.shape
        self.data = motion_to_bytes(motion)


class DatasetSplit(models.Model):
    """A stored train/validation/test partition, so every model and attack sees the same one."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="splits")
    name = models.CharField(max_length=100, help_text="e.g. stratified-seed0 or ntu-xsub")
    method = models.CharField(max_length=30)
    seed = models.IntegerField(default=0)
    parameters = models.JSONField(default=dict)
    train = models.JSONField(help_text="Clip indices")
    val = models.JSONField(help_text="Clip indices")
    test = models.JSONField(help_text="Clip indices")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="unique_split_name")]

    def __str__(self):
        return f"{self.dataset.name}/{self.name}"

    def indices(self, part: str) -> list[int]:
        if part not in ("train", "val", "test"):
            raise ValueError(f"unknown split part {part!r}: use train, val or test")
        return list(getattr(self, part))


class Recognizer(models.Model):
    class Status(models.TextChoices):
        """Where a recognizer's training stands; only a ready one is attacked or classifies."""
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    name = models.SlugField(max_length=100, unique=True)
    arch = models.CharField(max_length=20)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="recognizers")
    split = models.ForeignKey(DatasetSplit, on_delete=models.PROTECT, related_name="recognizers")
    hyperparameters = models.JSONField(default=dict)
    input_spec = models.JSONField(default=dict, help_text="num_frames, num_persons, normalisation the model expects")
    checkpoint = models.CharField(max_length=500, blank=True, help_text="Path relative to DATA_DIR")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRAINING)
    epochs_trained = models.PositiveIntegerField(default=0)
    best_epoch = models.IntegerField(null=True, blank=True)
    train_accuracy = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    test_accuracy = models.FloatField(null=True, blank=True)
    num_parameters = models.PositiveBigIntegerField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True)
    confusion = models.JSONField(default=list, blank=True, help_text="Test-split confusion matrix (rows: truth)")
    learning_curve = models.CharField(max_length=500, blank=True)
    confusion_figure = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "arch", "name"]

    def __str__(self):
        return f"{self.name} ({self.arch} on {self.dataset.name})"


class GenerationRun(models.Model):
    """One configuration of an attack against one recognizer; re-running it resumes."""

    class Status(models.TextChoices):
        """A run in-process is running until done; a run for the workers is queued until they start it.
        Cancelled (admin) and failed runs keep the samples they stored and can be queued again."""
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    recognizer = models.ForeignKey(Recognizer, on_delete=models.CASCADE, related_name="runs")
    method = models.CharField(max_length=20)
    strategy = models.CharField(max_length=10)
    split = models.CharField(max_length=10, default="test")
    config = models.JSONField(help_text="Everything that determines the samples (method options, seed, ...)")
    config_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0, help_text="Clips in scope")
    skipped = models.PositiveIntegerField(default=0, help_text="Clips misclassified before the attack")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    shards = models.PositiveIntegerField(default=0, help_text="Shards sent to Celery workers (0: run in-process)")
    shards_finished = models.JSONField(default=list, blank=True, help_text="Indices of the shards workers finished")
    queue_options = models.JSONField(default=dict, blank=True, help_text="Shard size and batch size of a queued run")
    calibration = models.JSONField(
        default=dict, blank=True,
        help_text="Set on a run chosen by calibrate_budget: the reference run and success it matched, the "
                  "tolerance, and every budget tried with its success rate")
    preparation = models.JSONField(
        default=dict, blank=True,
        help_text="What the run's fixed parts were made from (CIASA: angle-box source, the clip ids its "
                  "discriminator was trained on)")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["recognizer", "config_hash"], name="unique_run_config")]

    def __str__(self):
        return f"{self.method}/{self.strategy} on {self.recognizer.name}"

    @staticmethod
    def hash_config(config: dict) -> str:
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()

    @property
    def done(self) -> int:
        return self.samples.count()

    def success_rate(self) -> float | None:
        n = self.samples.count()
        return self.samples.filter(success=True).count() / n if n else None


class AdversarialSampleQuerySet(models.QuerySet):
    def matching(self, recognizers=(), methods=(), strategies=(), runs=()):
        """Samples made on any of `recognizers` by any of `methods`/`strategies` (empty = all)."""
        qs = self
        if recognizers:
            qs = qs.filter(recognizer__name__in=recognizers)
        if methods:
            qs = qs.filter(method__in=methods)
        if strategies:
            qs = qs.filter(strategy__in=strategies)
        if runs:
            qs = qs.filter(run_id__in=runs)
        return qs


class AdversarialSample(models.Model):
    objects = AdversarialSampleQuerySet.as_manager()

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="samples")
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="adversarial_samples")
    recognizer = models.ForeignKey(Recognizer, on_delete=models.CASCADE, related_name="samples")
    method = models.CharField(max_length=20)
    strategy = models.CharField(max_length=10)
    fps = models.FloatField(help_text="Frame rate of the stored motions (after resampling to the model's length)")
    num_persons = models.PositiveSmallIntegerField()
    num_frames = models.PositiveIntegerField()
    num_joints = models.PositiveSmallIntegerField()
    original = models.BinaryField(help_text="float32 (M, T, V, 3), world units, as attacked")
    adversarial = models.BinaryField(help_text="float32 (M, T, V, 3), world units")
    label = models.PositiveIntegerField()
    label_before = models.PositiveIntegerField()
    label_after = models.PositiveIntegerField()
    target = models.IntegerField(null=True, blank=True)
    probs_before = models.JSONField()
    probs_after = models.JSONField()
    success = models.BooleanField(help_text="The strategy's criterion on the stored motion, fed to the recognizer as "
                                            "any user would (world units, its own preprocessing): what classify says")
    attack_success = models.BooleanField(null=True, blank=True,
                                         help_text="The criterion as the attack loop judged it when it froze the sample")
    iterations = models.PositiveIntegerField()
    mean_displacement = models.FloatField(help_text="metres")
    max_displacement = models.FloatField(help_text="metres")
    linf_displacement = models.FloatField(null=True, blank=True,
                                          help_text="metres: largest change of any coordinate (the L∞ budget used)")
    bone_length_error = models.FloatField(help_text="metres")
    velocity_deviation = models.FloatField()
    acceleration_deviation = models.FloatField()
    jerk_deviation = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "clip__index"]
        constraints = [models.UniqueConstraint(fields=["run", "clip"], name="one_sample_per_clip_and_run")]

    def __str__(self):
        return f"{self.method}/{self.strategy} {self.clip}"

    @property
    def shape(self):
        return (self.num_persons, self.num_frames, self.num_joints, 3)

    def original_motion(self) -> np.ndarray:
        return motion_from_bytes(self.original, self.shape)

    def adversarial_motion(self) -> np.ndarray:
        return motion_from_bytes(self.adversarial, self.shape)


class TransferResult(models.Model):
    """A stored sample judged by another recognizer (black-box transfer)."""

    sample = models.ForeignKey(AdversarialSample, on_delete=models.CASCADE, related_name="transfers")
    recognizer = models.ForeignKey(Recognizer, on_delete=models.CASCADE, related_name="transfer_results")
    label_clean = models.PositiveIntegerField(help_text="Prediction on the original motion")
    label_after = models.PositiveIntegerField()
    probs_after = models.JSONField()
    success = models.BooleanField(help_text="Judged with the sample's own strategy criterion")
    in_target_training = models.BooleanField(
        default=False, help_text="The source clip is in the target recognizer's training or validation split")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "recognizer"], name="one_transfer_per_pair")]


class RobustnessReport(models.Model):
    name = models.CharField(max_length=200)
    filters = models.JSONField(default=dict)
    out_dir = models.CharField(max_length=500)
    tables = models.JSONField(default=dict, help_text="Table name -> rows")
    figures = models.JSONField(default=list, help_text="Paths relative to DATA_DIR")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name
