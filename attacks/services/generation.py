"""Generating adversarial samples into the database, and judging them on other recognizers.

A `GenerationRun` is identified by its configuration: running `generate_samples` again
with the same arguments finds the run and attacks only the clips it has not stored yet.
Each batch is written in its own transaction as soon as it is done, and everything
random (SA targets, the CIASA discriminator) is drawn from the whole scope up front, so
a resumed run stores exactly what an uninterrupted one would have.

What a method does before its first batch is its own `prepare` hook, reached through
`attacks.core.methods.prepare` as the in-process attacks reach it; this module only picks
the clean clips a hook learns from (outside the scope), runs it once per run in
`prepare_run` (for the in-process run and for a queued one alike) and stores what it
learned, so every shard loads the same state instead of learning its own.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.db import reset_queries, transaction
from django.utils import timezone

from attacks.core.data import protocol_view
from attacks.services.clip_cache import ClipInputs, split_inputs
from attacks.core.training.evaluation import predict as predict_probs
from attacks.core.training.evaluation import predict_logits
from attacks.core.methods.losses import STRATEGIES, attack_success
from attacks.core.methods import (METHODS, REGISTRY, MotionDiscriminator, attack_in_batches, draw_targets,
                                  method_config, prepare)
from attacks.core.recognizers import compile_gain
from attacks.core.methods.numerics import PRECISIONS, Numerics
from attacks.core.methods.metrics import perceptual_metrics
from attacks.core.errors import AttacksError
from attacks.models import AdversarialSample, GenerationRun, Recognizer, TransferResult, motion_to_bytes
from attacks.services.recognition import RecognitionError, load_model, model_inputs, recognizer_inputs, split_clips, view_protocol

Status = GenerationRun.Status


@dataclasses.dataclass
class GenerationReport:
    run: GenerationRun
    attacked_now: int
    already_stored: int


class GenerationCancelled(AttacksError):
    """The run was cancelled (admin) while a batch was being attacked; what is stored stays."""


@dataclasses.dataclass
class GenerationScope:
    """What every batch of a run shares, drawn from the whole scope before the first batch.

    A worker that attacks any subset of the clips (a shard, or the rest of an interrupted
    run) sees the same SA targets and the same CIASA discriminator as an uninterrupted
    in-process run, and so stores the same samples.
    """

    run: GenerationRun
    recognizer: Recognizer
    config: dict
    clips: list  # the Clip rows in scope, in split order; positions index into this list
    labels: np.ndarray
    targets: np.ndarray | None
    options: dict  # method options, with the run's discriminator when the method needs one
    skeleton: object

    def stored_positions(self) -> set[int]:
        stored = set(self.run.samples.values_list("clip_id", flat=True))
        return {i for i, c in enumerate(self.clips) if c.pk in stored}


# Part of every run's identity: bump it when a default changes what a configuration
# computes, so that re-running a command after an upgrade starts a new run instead of
# completing an old one with samples of another definition. 2: SMART's perceptual terms
# balanced, derivatives per second (2026-12-02). 3: attacks perturb world-unit motions through the
# recognizer's own normalisation and success is judged on the stored sample (2026-12-02). 4: CIASA
# complete: angle limits learned from the training split by default, the discriminator trained on
# training clips alternately with the attack, realignment alternated with the L∞ clip (2026-12-03).
ENGINE_VERSION = 4
STREAM_CHUNK = 1024  # clips whose motions an attack holds in memory at once (rounded to whole batches)


def generation_config(method, strategy, *, top_n=3, target=None, iterations=300, split="test", limit=None,
                      seed=0, options=None, margin=0.0, preset=None, precision="fp32") -> dict:
    """The run's identity; `method_config` validates the options (unknown ones raise).

    margin: success only when the wrong (SA: the target) class leads by that much in logits.
    preset: for a method whose config has named readings (SMART and its ablations:
    `SmartConfig.PRESETS`, default `SmartConfig.DEFAULT_PRESET`), stored with its version
    as the config's `resolve_preset` gives them; options override its values.
    precision: "fp32" (the exact path) or "bf16", how the recognizer runs inside the attack
    loop (`methods.numerics`); stored with the run when it is not fp32, so it is part of
    the run's identity (and of what resumes it). Verdicts are float32 either way.
    """
    if precision not in PRECISIONS:
        raise RecognitionError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if method not in METHODS:
        raise RecognitionError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if strategy not in STRATEGIES:
        raise RecognitionError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    options = dict(options or {})
    preset = preset or options.pop("preset", None)
    resolve_preset = getattr(REGISTRY[method].config, "resolve_preset", None)
    version = None
    if resolve_preset is not None:  # the config's own default applies when none is named
        try:
            preset, version = resolve_preset(preset)
        except ValueError as e:
            raise RecognitionError(str(e)) from None
        options_for_check = {**options, "preset": preset}
    elif preset:
        with_presets = [n for m in REGISTRY if hasattr(m.config, "resolve_preset") for n in m.names]
        raise RecognitionError(f"--preset applies to {', '.join(with_presets)}, not {method}")
    else:
        options_for_check = options
    try:
        method_config(method, **options_for_check)
    except (TypeError, ValueError) as e:
        raise RecognitionError(f"invalid option for {method}: {e}") from None
    if strategy == "sa" and target is None:
        target = "random"
    if strategy != "sa" and target is not None:
        raise RecognitionError("--target only applies to strategy sa")
    if not float(margin) >= 0:
        raise RecognitionError(f"--margin must be >= 0 (logits), got {margin}")
    return {"margin": float(margin), "method": method, "strategy": strategy, "top_n": int(top_n) if strategy == "abn" else None,
            "target": target, "iterations": int(iterations), "split": split, "limit": limit, "seed": int(seed),
            "options": options, "engine": ENGINE_VERSION,
            **({"preset": {"name": preset, "version": version}} if version is not None else {}),
            **({"precision": precision} if precision != "fp32" else {})}


def generate_samples(recognizer: Recognizer, config: dict, *, batch_size=64, device="cpu",
                     progress=True, compile=None, channels_last=None) -> GenerationReport:
    """Attack the correctly classified clips of the configured split; store one sample per clip.

    In-process: prepare the scope, then attack every attackable clip not stored yet. Celery
    workers run the same two steps, one shard of positions at a time (`attacks.tasks`).
    compile, channels_last: execution options (`Numerics.for_run`; None: the measured default).
    """
    run = open_run(recognizer, config)
    scope, attackable, model, inputs = prepare_run(run, device=device)
    stored = scope.stored_positions()
    todo = [int(i) for i in attackable if int(i) not in stored]
    attack_positions(scope, todo, model=model, inputs=inputs, batch_size=batch_size, device=device,
                     progress=progress, compile=compile, channels_last=channels_last)
    run.status, run.finished_at = Status.DONE, timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return GenerationReport(run=run, attacked_now=len(todo), already_stored=len(stored))


def open_run(recognizer: Recognizer, config: dict) -> GenerationRun:
    """The run of this configuration (created on first use); a cancelled run is not reopened."""
    run, _ = GenerationRun.objects.get_or_create(
        recognizer=recognizer, config_hash=GenerationRun.hash_config(config),
        defaults={"method": config["method"], "strategy": config["strategy"], "split": config["split"],
                  "config": config})
    if run.status == Status.CANCELLED:
        raise RecognitionError(f"run {run.pk} was cancelled; delete it to start again")
    return run


def prepare_run(run: GenerationRun, *, device="cpu", status=Status.RUNNING):
    """Classify the scope, record its size, and fix what is random: the SA targets (drawn
    over the whole scope by `draw_targets`) and the method's prepare hook (run once, its
    learned state stored under DATA_DIR by `prepare_method_run`). Both `generate_samples`
    and a queued run (`attacks.tasks`) come through here; shards then only `load_scope`.
    Returns (scope, attackable positions, model, inputs), `inputs` the scope's `ClipInputs`
    (streamed from the dataset's clip cache, never all in memory)."""
    recognizer = run.recognizer
    clips, labels = _scope_clips(run)
    inputs = scope_inputs(recognizer, clips)
    model = load_model(recognizer, device)
    probs = predict_probs(model, inputs, device=device)
    attackable = probs.argmax(1) == labels
    targets = _targets(run.config, labels, recognizer.dataset)
    if targets is not None and run.config["target"] != "random":
        attackable &= labels != targets  # a clip of the target class cannot be attacked towards it
    positions = np.flatnonzero(attackable)
    run.total, run.skipped = len(clips), int((~attackable).sum())
    run.status = status
    run.save(update_fields=["total", "skipped", "status"])
    if len(positions) and _needs_preparation(run.config) and not preparation_path(run).exists():
        prepare_method_run(run, clips, model, device=device)
    return load_scope(run, clips=clips, labels=labels), positions, model, inputs


def load_scope(run: GenerationRun, *, clips=None, labels=None) -> GenerationScope:
    """The scope of a prepared run, without classifying anything (what a shard worker needs)."""
    recognizer = run.recognizer
    if clips is None:
        clips, labels = _scope_clips(run)
    skeleton = recognizer.dataset.get_skeleton()
    options = run_options(run.config)
    if _needs_preparation(run.config) and preparation_path(run).exists():
        if discriminator_path(run).exists():
            options["discriminator"] = load_discriminator(discriminator_path(run), skeleton)
        bounds = discriminator_path(run).with_name("angle_bounds.npy")
        options["angle_bounds"] = np.load(bounds) if bounds.exists() else "none"
    return GenerationScope(run=run, recognizer=recognizer, config=run.config, clips=clips, labels=labels,
                           targets=_targets(run.config, labels, recognizer.dataset), options=options,
                           skeleton=skeleton)


def attack_positions(scope: GenerationScope, positions, *, model=None, inputs=None, batch_size=64, device="cpu",
                     progress=True, compile=None, channels_last=None) -> int:
    """Attack the clips at `positions` of the scope that are not stored yet, batch by batch;
    each batch is stored in its own transaction. Checks for cancellation after every batch
    (raising `GenerationCancelled`). Returns the number of samples stored now.

    The attack perturbs the world-unit motion (what is stored) and the recognizer sees it
    through its own normalisation (`protocol_view.normalise`, differentiated through). A
    sample is frozen only when the stored motion, fed back as `classify` feeds it, meets
    the criterion; otherwise the attack goes on. `success` and `label_after` are then
    measured once more on the stored bytes by that public path.

    `inputs` may be the scope's `ClipInputs` (the in-process run has them). Either way the
    clips are read from the dataset's clip cache one chunk of whole batches at a time, so
    memory does not grow with the scope, and the batches are those of an all-at-once run.
    """
    run, config, clips = scope.run, scope.config, scope.clips
    stored = scope.stored_positions()
    todo = np.array([int(i) for i in positions if int(i) not in stored], dtype=np.int64)
    try:
        # Compilation pays over the run's remaining work, not one shard's: a Celery worker
        # keeps its recognizer, and the compiled module with it, from shard to shard.
        remaining = max(len(todo), (run.total or 0) - (run.skipped or 0) - len(stored))
        numerics = Numerics.for_run(run_precision(config), compile=compile, channels_last=channels_last,
                                    clips=remaining, compile_gain=compile_gain(run.recognizer.arch))
        numerics.check_device(device)
    except ValueError as e:
        raise RecognitionError(f"run {run.pk}: {e}") from None
    if not len(todo):
        return 0
    if _needs_preparation(config) and not preparation_path(run).exists():
        raise RecognitionError(f"run {run.pk} has no stored {config['method']} preparation "
                               f"({preparation_path(run)}); prepare the run first")
    recognizer = scope.recognizer
    protocol = view_protocol(recognizer)
    source = inputs if inputs is not None else scope_inputs(recognizer, clips)
    model = model if model is not None else load_model(recognizer, device)
    labels = scope.labels
    targets = scope.targets
    margin = float(config.get("margin", 0.0))
    written = 0

    def judge(motions, rows):
        """Logits of stored motions (float32 world units) through the public path, and the verdict."""
        logits = predict_logits(model, recognizer_inputs(recognizer, list(motions)), device=device)
        t = None if targets is None else torch.as_tensor(targets[todo[rows]])
        ok = attack_success(logits, config["strategy"], torch.as_tensor(labels[todo[rows]]), t,
                            config["top_n"] or 3, margin)
        return logits, ok

    def accept(x, rows):
        return judge(x.detach().cpu().numpy().astype("<f4"), rows)[1]

    def store(_batch, idx, result):
        nonlocal written
        rows = []
        pos, at = todo[idx], rows_of[idx]
        adversarial = result.adversarial.numpy().astype("<f4")
        logits, after_storage = judge(adversarial, idx)
        probs = torch.softmax(logits.double(), dim=1).numpy()
        metrics = perceptual_metrics(inputs.world[at], adversarial, scope.skeleton, fps=inputs.fps[at])
        for k, (i, r) in enumerate(zip(pos, at)):
            clip = clips[i]
            m, t, v, _ = adversarial[k].shape
            rows.append(AdversarialSample(
                run=run, clip=clip, recognizer=recognizer, method=config["method"], strategy=config["strategy"],
                fps=float(inputs.fps[r]), num_persons=m, num_frames=t, num_joints=v,
                original=motion_to_bytes(inputs.world[r]), adversarial=motion_to_bytes(adversarial[k]),
                label=int(labels[i]), label_before=int(result.labels_before[k]),
                label_after=int(probs[k].argmax()),
                target=None if result.targets is None else int(result.targets[k]),
                probs_before=[round(float(p), 6) for p in result.probs_before[k]],
                probs_after=[round(float(p), 6) for p in probs[k]],
                success=bool(after_storage[k]), attack_success=bool(result.success[k]),
                iterations=int(result.iterations[k]),
                **{name: float(values[k]) for name, values in metrics.items()}))
        with transaction.atomic():
            # Another worker may have stored some of these clips (a redelivered shard): the
            # results are identical, and the unique (run, clip) constraint keeps one of each.
            AdversarialSample.objects.bulk_create(rows, ignore_conflicts=True)
        reset_queries()  # with DEBUG on, Django would keep every batch's SQL, motions in hex included
        written += len(rows)
        if GenerationRun.objects.filter(pk=run.pk, status=Status.CANCELLED).exists():
            raise GenerationCancelled(f"run {run.pk} was cancelled")

    def preprocess(x):
        return protocol_view.normalise(x, protocol, scope.skeleton)

    everything, chunk = todo, batch_size * max(1, STREAM_CHUNK // batch_size)
    for start in range(0, len(everything), chunk):
        # judge, accept and store above read this chunk's todo, inputs and rows_of.
        todo = everything[start:start + chunk]
        inputs, rows_of = source.model_inputs(todo), np.arange(len(todo))
        # The chunk's world motions are passed as they are (no indexed copy) and no batch's
        # result is kept once stored: the chunk's inputs are what memory holds.
        attack_in_batches(
            model, inputs.world, labels[todo], scope.skeleton, batch_size=batch_size, device=device,
            targets=None if targets is None else targets[todo], fps=inputs.fps, on_batch=store, keep_results=False,
            show_progress=progress, preprocess=preprocess, margin=margin, accept=accept,
            method=config["method"], strategy=config["strategy"], seed=config["seed"],
            iterations=config["iterations"], top_n=config["top_n"] or 3, numerics=numerics, **scope.options)
    return written


def run_options(config: dict) -> dict:
    """The method options a run's configuration stands for, its preset included."""
    options = dict(config["options"])
    if config.get("preset"):
        options["preset"] = config["preset"]["name"]
    return options


def run_precision(config: dict) -> str:
    """The precision the run's recognizer runs at in the attack loop ("fp32" when none is stored)."""
    return config.get("precision", "fp32")


def scope_inputs(recognizer: Recognizer, clips) -> ClipInputs:
    """What `recognizer` sees of these clips, read from its dataset's clip cache batch by batch."""
    return split_inputs(recognizer.dataset, [c.index for c in clips], recognizer.input_spec,
                        view_protocol(recognizer))


def discriminator_path(run: GenerationRun) -> Path:
    """Per run (and its creation time, since a deleted run's id may come back)."""
    stamp = int(run.created_at.timestamp() * 1000)
    return Path(settings.DATA_DIR) / "generation" / f"run-{run.pk}-{stamp}" / "discriminator.pt"


def preparation_path(run: GenerationRun) -> Path:
    """Written last when a run is prepared: its presence means the learned state (CIASA: the
    box and D) is stored."""
    return discriminator_path(run).with_name("preparation.json")


def prepare_method_run(run: GenerationRun, scope_clips, model, *, device="cpu") -> dict:
    """Run the method's prepare hook once for the run, on clean clips outside the scope, and
    store what it learned (CIASA: its angle box and discriminator).

    The clips are the recognizer's training split minus any clip in the run's scope (a run
    attacking the training split falls back to the validation split minus the scope), the
    ones it classifies correctly (CIASA's fakes are its own AB attacks on them); they are
    read only when the hook has something to learn from them. The learned state is stored
    under DATA_DIR with the clip ids it came from, also kept in `run.preparation`, so every
    worker and resumed run uses the same.
    """
    recognizer = run.recognizer
    skeleton = recognizer.dataset.get_skeleton()
    in_scope = {c.pk for c in scope_clips}
    pool = [c for c in split_clips(recognizer.split, "train") if c.pk not in in_scope]
    part = "train"
    if not pool:
        pool, part = [c for c in split_clips(recognizer.split, "val") if c.pk not in in_scope], "val"
    cfg = method_config(run.config["method"], **run_options(run.config))
    record = {"clip_part": part}
    protocol = view_protocol(recognizer)

    def preprocess(x):
        return protocol_view.normalise(x, protocol, skeleton)

    world = train_labels = None
    if REGISTRY[run.config["method"]].needs_preparation(cfg):
        if not pool:
            raise RecognitionError(f"run {run.pk}: {run.config['method']} needs clean clips outside the attacked "
                                   "ones (training or validation split) to prepare (CIASA: its angle box and "
                                   "discriminator)")
        inputs = model_inputs(pool, skeleton, recognizer.input_spec, recognizer.dataset.fps, protocol)
        labels = np.array([c.label for c in pool], dtype=np.int64)
        correct = predict_probs(model, inputs.X, device=device).argmax(1) == labels
        keep = np.flatnonzero(correct) if correct.any() else np.arange(len(pool))
        pool = [pool[i] for i in keep]
        world, train_labels = torch.from_numpy(inputs.world[keep]).to(device), labels[keep]
    else:  # a given box (or none) and no discriminator: nothing to learn
        pool = []
    made = prepare(cfg, model, skeleton, [], strategy="ab", seed=run.config["seed"], preprocess=preprocess,
                   train_motions=world, train_labels=train_labels, always=True)
    prepared = made.config
    for key, value in made.record.items():
        if key.endswith("_positions"):  # positions in the clips the hook learned from, as clip ids
            record[key[:-len("_positions")] + "_clip_ids"] = sorted(pool[i].pk for i in value)
        else:
            record[key] = value
    if record.get("angle_bounds") == "train":
        record["angle_bounds_clip_ids"] = [c.pk for c in pool]
    elif "angle_bounds" in record and pool:
        record["angle_bounds_clip_ids"] = []
    leaked = set(record.get("discriminator_clip_ids", ())) & in_scope
    if leaked:  # pragma: no cover - guarded by construction
        raise RecognitionError(f"run {run.pk}: the discriminator would see attacked clips {sorted(leaked)[:5]}")
    path = discriminator_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    if getattr(prepared, "discriminator", None) is not None:
        save_discriminator(prepared.discriminator, path)
    if getattr(prepared, "angle_bounds", None) is not None:
        np.save(path.with_name("angle_bounds.npy"), np.asarray(prepared.angle_bounds, dtype=np.float64))
    tmp = preparation_path(run).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, preparation_path(run))
    GenerationRun.objects.filter(pk=run.pk).update(preparation=record)
    run.preparation = record
    return record


def save_discriminator(disc: MotionDiscriminator, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    first = disc.net[0]
    torch.save({"num_persons": first.in_channels // (3 * (disc.skeleton.num_bones + disc.skeleton.num_joints)),
                "hidden": first.out_channels,
                "state": {k: v.detach().cpu() for k, v in disc.state_dict().items()}}, tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader sees no file or the whole file


def load_discriminator(path: Path, skeleton) -> MotionDiscriminator:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    disc = MotionDiscriminator(skeleton, saved["num_persons"], hidden=saved["hidden"])
    disc.load_state_dict(saved["state"])
    return disc.eval()


def _scope_clips(run: GenerationRun):
    recognizer, config = run.recognizer, run.config
    # Without the motions and metadata (read from the clip cache when needed): an NTU scope
    # of Clip rows with their blobs would not fit in memory.
    clips = list(recognizer.split.dataset.clips.filter(index__in=recognizer.split.indices(config["split"]))
                 .order_by("index").defer("data", "meta"))
    if config["limit"]:
        clips = clips[: int(config["limit"])]
    if not clips:
        raise RecognitionError(f"split {config['split']!r} of {recognizer.split} has no clips")
    return clips, np.array([c.label for c in clips], dtype=np.int64)


def _targets(config, labels, dataset):
    """The run's SA targets over its whole scope: the seed rule every attack uses
    (`draw_targets`), so a shard or resumed run reads by position what an uninterrupted
    run drew."""
    if config["strategy"] != "sa":
        return None
    target = config["target"]
    if target != "random" and not 0 <= int(target) < dataset.num_classes:
        raise RecognitionError(f"target {target} is not a class of {dataset.name} (0..{dataset.num_classes - 1})")
    return draw_targets(labels, dataset.num_classes, config["seed"], target).numpy()


def _needs_preparation(config) -> bool:
    """Whether the run's method has a prepare hook (then its learned state is stored)."""
    return REGISTRY[config["method"]].prepare is not None


def success_criterion(strategy, probs_after: np.ndarray, label: int, target, top_n) -> bool:
    """The sample's own strategy criterion, applied to another recognizer's output."""
    if strategy == "ab":
        return int(probs_after.argmax()) != label
    if strategy == "abn":
        return label not in np.argsort(-probs_after, kind="stable")[: top_n or 3]
    return int(probs_after.argmax()) == target


def transfer_samples(samples, targets: list[Recognizer], *, device="cpu", progress=True) -> int:
    """Judge stored samples on other recognizers (black box); already judged pairs are skipped.

    Each target sees the world-unit motions through its own protocol (`recognizer_inputs`),
    the original as well as the adversarial one, so `label_clean` says whether the target
    gets the clip right before the attack. Clips the target was trained or validated on
    are flagged (`in_target_training`).
    """
    samples = list(samples.select_related("run", "clip", "recognizer__dataset"))
    written = 0
    for target in targets:
        todo = [s for s in samples if not TransferResult.objects.filter(sample=s, recognizer=target).exists()]
        if not todo:
            continue
        for s in todo:
            if s.recognizer.dataset.class_names != target.dataset.class_names:
                raise RecognitionError(f"{target.name} was trained on other classes than {s.recognizer.name}")
        model = load_model(target, device)
        seen = _seen_in_training(target)
        clean = predict_probs(model, recognizer_inputs(target, [s.original_motion() for s in todo]),
                              device=device).argmax(1)
        after = predict_probs(model, recognizer_inputs(target, [s.adversarial_motion() for s in todo]), device=device)
        rows = [TransferResult(sample=s, recognizer=target, label_clean=int(clean[k]),
                               label_after=int(after[k].argmax()),
                               probs_after=[round(float(p), 6) for p in after[k]],
                               success=success_criterion(s.strategy, after[k], s.label, s.target,
                                                         s.run.config.get("top_n")),
                               in_target_training=(s.clip.dataset_id, s.clip.index) in seen)
                for k, s in enumerate(todo)]
        with transaction.atomic():
            TransferResult.objects.bulk_create(rows)
        written += len(rows)
    return written


def _seen_in_training(recognizer: Recognizer) -> set[tuple[int, int]]:
    """(dataset id, clip index) of every clip a recognizer was trained or validated on."""
    split = recognizer.split
    if split is None:
        return set()
    return {(split.dataset_id, int(i)) for part in ("train", "val") for i in split.indices(part)}
