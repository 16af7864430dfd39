"""Celery tasks of sample generation: prepare a run on a worker, attack one shard of it.

The tasks only call the functions the in-process `generate_samples` is made of
(`prepare_run`, `load_scope`, `attack_positions`), so a shard stores exactly what the
in-process run stores for its clips. Shards are acknowledged late (settings): a worker
killed mid-shard leaves the message to be delivered again, and the retry skips the
clips already stored. Cancelling a run (admin) makes pending shards no-ops and stops
running ones after their current batch.

    queue_run(recognizer, config, shard_size=256, batch_size=64)   # generate_samples --queue
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from attacks.services.generation import GenerationCancelled, attack_positions, load_scope, open_run, prepare_run
from attacks.models import GenerationRun, Recognizer
from attacks.services.recognition import load_model
from attacks.core.sharding import aligned_shard_size, plan_shards

Status = GenerationRun.Status

log = logging.getLogger(__name__)


def queue_run(recognizer: Recognizer, config: dict, *, shard_size=256, batch_size=64, device="cpu",
              queue: str | None = None) -> tuple[GenerationRun, int]:
    """Prepare the run here (classify the scope, fix SA targets and the discriminator), then
    send one task per shard that still has clips to attack. Returns (run, shards sent).
    Queuing a run again re-sends only its unfinished shards."""
    run = open_run(recognizer, config)
    scope, attackable, _model, _inputs = prepare_run(run, device=device, status=Status.QUEUED)
    return run, send_shards(run, attackable, scope.stored_positions(), shard_size=shard_size,
                            batch_size=batch_size, queue=queue)


def send_shards(run: GenerationRun, attackable, stored: set[int], *, shard_size, batch_size, queue=None) -> int:
    shards = plan_shards(attackable, shard_size, batch_size)
    finished = [i for i, shard in enumerate(shards) if all(p in stored for p in shard)]
    run.shards, run.shards_finished = len(shards), finished
    run.queue_options = {"shard_size": aligned_shard_size(shard_size, batch_size), "batch_size": batch_size}
    fields = ["shards", "shards_finished", "queue_options"]
    if len(finished) == len(shards):
        run.status, run.finished_at = Status.DONE, timezone.now()
        fields += ["status", "finished_at"]
    run.save(update_fields=fields)
    sent = 0
    for index, shard in enumerate(shards):
        if index not in finished:
            attack_shard.apply_async(args=(run.pk, index, shard, batch_size), queue=queue)
            sent += 1
    log.info("queued %d shards of run %d", sent, run.pk, extra={"run": run.pk})
    return sent


@shared_task(bind=True, name="attacks.prepare_run")
def prepare_queued_run(self, run_id: int, shard_size: int, batch_size: int) -> int:
    """Started from admin: prepare on a worker's device, then send the shards to the same queue."""
    run = GenerationRun.objects.select_related("recognizer__dataset", "recognizer__split").filter(pk=run_id).first()
    if run is None or run.status == Status.CANCELLED:
        return 0
    scope, attackable, _model, _inputs = prepare_run(run, device=worker_device(), status=Status.QUEUED)
    queue = (self.request.delivery_info or {}).get("routing_key")
    return send_shards(run, attackable, scope.stored_positions(), shard_size=shard_size, batch_size=batch_size,
                       queue=queue)


@shared_task(name="attacks.attack_shard")
def attack_shard(run_id: int, index: int, positions: list[int], batch_size: int) -> str:
    """Attack one shard on this worker's device and store it batch by batch."""
    run = GenerationRun.objects.select_related("recognizer__dataset", "recognizer__split").filter(pk=run_id).first()
    if run is None or run.status == Status.CANCELLED:
        return "skipped"
    GenerationRun.objects.filter(pk=run_id, status=Status.QUEUED).update(status=Status.RUNNING)
    device = worker_device()
    try:
        stored = attack_positions(load_scope(run), positions, model=cached_model(run.recognizer, device),
                                  batch_size=batch_size, device=device, progress=False)
    except GenerationCancelled:
        log.info("run %d cancelled during shard %d", run_id, index, extra={"run": run_id, "shard": index})
        return "cancelled"
    except Exception:
        GenerationRun.objects.filter(pk=run_id).exclude(status=Status.CANCELLED).update(status=Status.FAILED)
        log.exception("shard %d of run %d failed", index, run_id, extra={"run": run_id, "shard": index})
        raise
    finish_shard(run_id, index)
    log.info("shard %d of run %d: %d samples stored", index, run_id, stored, extra={"run": run_id, "shard": index})
    return f"stored {stored}"


def finish_shard(run_id: int, index: int):
    """Record a finished shard (idempotent: a redelivered shard counts once); the last one
    finishes the run."""
    with transaction.atomic():
        run = GenerationRun.objects.select_for_update().get(pk=run_id)
        finished = set(run.shards_finished) | {index}
        run.shards_finished = sorted(finished)
        fields = ["shards_finished"]
        if len(finished) >= run.shards and run.status in (Status.QUEUED, Status.RUNNING):
            run.status, run.finished_at = Status.DONE, timezone.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)


def worker_device() -> str:
    """settings.GENERATION_DEVICE; "auto" is the first visible CUDA device, else the CPU."""
    device = settings.GENERATION_DEVICE
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


_models: dict = {}


def cached_model(recognizer: Recognizer, device: str) -> torch.nn.Module:
    """A worker keeps the last recognizer it loaded: consecutive shards of a run reuse it."""
    checkpoint = Path(settings.DATA_DIR) / recognizer.checkpoint
    key = (recognizer.pk, str(checkpoint), checkpoint.stat().st_mtime_ns if checkpoint.exists() else None, device)
    if key not in _models:
        _models.clear()
        _models[key] = load_model(recognizer, device)
    return _models[key]
