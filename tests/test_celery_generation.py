"""generate_samples --queue with a real Redis broker and real `celery worker` processes.

The workers are subprocesses that open the test database itself (a file on SQLite,
the test database on PostgreSQL), so the tests are transactional: every row the test
writes is committed and visible to them. Each test uses its own Celery queue name,
so other test runs sharing the Redis server do not steal its shards.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from django.core import serializers
from django.core.management import call_command
from django.db import connection

from attacks.models import AdversarialSample, Dataset, DatasetSplit, GenerationRun, Recognizer

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# l2 with a small step rarely succeeds early, so every batch runs all its iterations and a
# worker can be caught mid-shard; CIASA covers the stored discriminator.
L2 = dict(recognizer="tiny", method="l2", lr=0.0005, iterations=25, split="train", batch_size=2, no_progress=True)
CIASA = dict(recognizer="tiny", method="ciasa", iterations=8, split="train", batch_size=2, no_progress=True,
             option=["gan_weight=0.5", "discriminator_steps=15", "epsilon=0.02", "step_size=0.005"])


def redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        reason = f"Redis not reachable at {REDIS_URL} ({e})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)
    return client


@pytest.fixture(scope="module")
def trained_rows(django_db_setup, django_db_blocker, tmp_path_factory):
    """A tiny synthetic dataset and a quickly trained recognizer, made once for the module
    (under a private DATA_DIR) and kept as serialized rows: the transactional tests empty
    the database after each test, and `trained` puts the rows back."""
    from django.conf import settings

    data_dir = tmp_path_factory.mktemp("data")
    old, settings.DATA_DIR = settings.DATA_DIR, data_dir
    try:
        with django_db_blocker.unblock():
            call_command("import_dataset", "synthetic", "classes=3,clips=6,frames=30,seed=2", name="celery-syn",
                         no_progress=True)
            call_command("train_recognizer", dataset="celery-syn", arch="stgcn", name="tiny", width=8, epochs=5,
                         frames=24, batch_size=8, lr=0.1, seed=0, no_progress=True)
            dataset = Dataset.objects.get(name="celery-syn")
            rows = serializers.serialize("json", [dataset, *dataset.clips.all(), *DatasetSplit.objects.filter(
                dataset=dataset), *Recognizer.objects.filter(dataset=dataset)])
            Recognizer.objects.filter(dataset=dataset).delete()
            dataset.delete()
    finally:
        settings.DATA_DIR = old
    return data_dir, rows


@pytest.fixture
def trained(trained_rows, settings):
    data_dir, rows = trained_rows
    settings.DATA_DIR = data_dir
    for obj in serializers.deserialize("json", rows):
        obj.save()
    yield data_dir
    shutil.rmtree(data_dir / "generation", ignore_errors=True)  # stored discriminators of this test's runs


class Workers:
    """Starts `celery -A studyportal worker` processes on one private queue."""

    def __init__(self, data_dir: Path, log_dir: Path, **env):
        self.queue = f"test-{uuid.uuid4().hex[:12]}"
        self.procs, self.logs = [], []
        self.log_dir = log_dir
        self.env = {**os.environ, "DATABASE_URL": database_url(), "DATA_DIR": str(data_dir),
                    "CELERY_BROKER_URL": REDIS_URL, "GENERATION_DEVICE": "cpu",
                    "DEBUG": "1", "PYTHONPATH": str(ROOT), **env}

    def start(self, name: str) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "studyportal", "worker", "--pool", "solo", "-c", "1",
             "-Q", self.queue, "-n", f"{name}-{self.queue}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "info"],
            cwd=ROOT, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all("ready." in log.read_text() for log in self.logs):
                return
            for proc, log in zip(self.procs, self.logs):
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited early:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError("workers not ready:\n" + "\n".join(log.read_text()[-2000:] for log in self.logs))

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(trained, tmp_path):
    client = redis_or_skip()
    # The same number of intra-op threads as this process: CPU reductions then add in the same
    # order, and a worker's floats match the in-process run's bit for bit.
    group = Workers(trained, tmp_path, OMP_NUM_THREADS=str(torch.get_num_threads()))
    yield group
    group.stop()
    client.delete(group.queue)


def database_url() -> str:
    """The test database as a URL a worker process can open."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        name = s["NAME"]
        assert "memory" not in str(name), "the SQLite test database must be a file for worker processes"
        return f"sqlite:///{name}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def wait_for_run(run_pk: int, workers: Workers, timeout=150) -> GenerationRun:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = GenerationRun.objects.get(pk=run_pk)
        if run.status in ("done", "failed", "cancelled"):
            return run
        time.sleep(0.3)
    logs = "\n".join(log.read_text()[-3000:] for log in workers.logs)
    raise AssertionError(f"run {run_pk} not finished ({run.status}, {run.done} samples):\n{logs}")


def samples_of(run) -> dict:
    return {s.clip_id: (bytes(s.adversarial), bytes(s.original), s.label_after, s.iterations)
            for s in AdversarialSample.objects.filter(run=run)}


def in_process_reference(options) -> dict:
    """The samples an ordinary in-process run stores, then the run is deleted again."""
    call_command("generate_samples", **options)
    run = GenerationRun.objects.get()
    reference = samples_of(run)
    run.delete()
    return reference


def test_one_run_split_over_two_workers_stores_the_in_process_samples(workers):
    reference = in_process_reference(CIASA)
    assert len(reference) >= 4
    workers.start("w1")
    workers.start("w2")
    workers.wait_ready()
    call_command("generate_samples", queue=True, shard_size=2, celery_queue=workers.queue, **CIASA)
    run = GenerationRun.objects.get()
    assert run.shards == -(-len(reference) // 2) and run.status in ("queued", "running", "done")
    run = wait_for_run(run.pk, workers)
    assert run.status == "done"
    assert sorted(run.shards_finished) == list(range(run.shards))
    assert samples_of(run) == reference  # same bytes, labels and iteration counts, clip by clip
    # Both workers attacked shards (the split really was split).
    for log in workers.logs:
        assert "attacks.attack_shard" in log.read_text() and "succeeded" in log.read_text()


def test_killed_worker_loses_nothing_and_the_retried_shard_adds_no_duplicates(workers):
    reference = in_process_reference(L2)
    attackable = len(reference)
    # A short visibility timeout: the killed worker's unacknowledged shard returns to the
    # queue when the next worker starts (production keeps the default hour).
    workers.env["CELERY_VISIBILITY_TIMEOUT"] = "2"
    first = workers.start("w1")
    workers.wait_ready()
    call_command("generate_samples", queue=True, shard_size=attackable, celery_queue=workers.queue, **L2)
    run = GenerationRun.objects.get()
    assert run.shards == 1
    deadline = time.time() + 120
    while not AdversarialSample.objects.filter(run=run).exists():
        assert time.time() < deadline and first.poll() is None, workers.logs[0].read_text()[-3000:]
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = samples_of(run)
    assert 0 < len(kept) < attackable, "the worker finished its shard before it could be killed"
    assert GenerationRun.objects.get(pk=run.pk).status == "running"
    time.sleep(2.5)  # past the visibility timeout
    workers.logs.clear()
    workers.start("w2")
    run = wait_for_run(run.pk, workers)
    assert run.status == "done" and run.shards_finished == [0]
    stored = samples_of(run)
    assert AdversarialSample.objects.filter(run=run).count() == attackable  # unique (run, clip): no duplicates
    assert {k: stored[k] for k in kept} == kept  # what the killed worker stored is untouched
    assert stored == reference


def test_cancelled_run_turns_pending_shards_into_no_ops(workers):
    call_command("generate_samples", queue=True, shard_size=2, celery_queue=workers.queue, **L2)
    run = GenerationRun.objects.get()
    assert run.status == "queued" and run.shards >= 2
    GenerationRun.objects.filter(pk=run.pk).update(status="cancelled")  # what the admin action does
    workers.start("w1")
    workers.wait_ready()
    deadline = time.time() + 60
    while workers.logs[0].read_text().count("succeeded") < run.shards:
        assert time.time() < deadline, workers.logs[0].read_text()[-3000:]
        time.sleep(0.2)
    assert "skipped" in workers.logs[0].read_text()
    assert not AdversarialSample.objects.filter(run=run).exists()
    assert GenerationRun.objects.get(pk=run.pk).status == "cancelled"


def test_cancelling_a_running_run_stops_its_worker_after_the_current_batch(workers, admin_client):
    options = {**L2, "batch_size": 1}  # as many batches as clips: the cancel lands before the last one
    call_command("generate_samples", queue=True, shard_size=64, celery_queue=workers.queue, **options)
    run = GenerationRun.objects.get()
    attackable = run.total - run.skipped
    assert run.shards == 1 and attackable >= 3
    workers.start("w1")
    workers.wait_ready()
    deadline = time.time() + 120
    while GenerationRun.objects.get(pk=run.pk).status != "running":
        assert time.time() < deadline, workers.logs[0].read_text()[-3000:]
        time.sleep(0.02)
    # The admin action, while the worker attacks its first batch.
    r = admin_client.post("/admin/attacks/generationrun/", {"action": "cancel_runs", "_selected_action": [run.pk]})
    assert r.status_code == 302
    while "succeeded" not in workers.logs[0].read_text():
        assert time.time() < deadline, workers.logs[0].read_text()[-3000:]
        time.sleep(0.2)
    assert "'cancelled'" in workers.logs[0].read_text()  # the task's result: stopped, not finished
    run = GenerationRun.objects.get(pk=run.pk)
    assert run.status == "cancelled" and run.shards_finished == []
    stored = AdversarialSample.objects.filter(run=run).count()
    print(f"cancelled after {stored} of {attackable} samples")
    assert 0 < stored < attackable  # the batch under way is stored, the rest of the shard is not attacked
    time.sleep(1)
    assert AdversarialSample.objects.filter(run=run).count() == stored


def test_admin_starts_a_run_on_the_workers_and_shows_its_progress(workers, admin_client, settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = workers.queue  # where the admin sends its tasks
    recognizer = Recognizer.objects.get(name="tiny")
    form = {"recognizer": recognizer.pk, "method": "l2", "strategy": "ab", "split": "train", "top_n": 3,
            "target": "", "iterations": 5, "limit": 6, "seed": 0, "options": "lr=0.0005", "shard_size": 2,
            "batch_size": 2}
    r = admin_client.post("/admin/attacks/generationrun/add/", form)
    assert r.status_code == 302, r.content.decode()[-2000:]
    run = GenerationRun.objects.get()
    assert run.status == "queued" and run.config["options"] == {"lr": 0.0005} and run.config["limit"] == 6
    # The same configuration cannot be started twice.
    r = admin_client.post("/admin/attacks/generationrun/add/", form)
    assert r.status_code == 200 and f"This configuration is run {run.pk}" in r.content.decode()
    workers.start("w1")
    workers.wait_ready()
    run = wait_for_run(run.pk, workers)
    assert run.status == "done" and run.shards == -(-(run.total - run.skipped) // 2)
    page = admin_client.get("/admin/attacks/generationrun/").content.decode()
    attackable = run.total - run.skipped
    assert f"{attackable} / {attackable}" in page and f"{run.shards} / {run.shards}" in page
    # Cancel leaves done runs alone and flags the others.
    queued = GenerationRun.objects.create(recognizer=recognizer, method="l2", strategy="ab", config={},
                                          config_hash="x", status="queued")
    admin_client.post("/admin/attacks/generationrun/", {"action": "cancel_runs",
                                                        "_selected_action": [run.pk, queued.pk]})
    assert GenerationRun.objects.get(pk=run.pk).status == "done"
    assert GenerationRun.objects.get(pk=queued.pk).status == "cancelled"
