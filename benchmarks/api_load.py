"""Load benchmark of the participant API: p50 / p95 / p99 latency and throughput of the
next-trial and submit-answer endpoints with many concurrent simulated participants,
against the app served by gunicorn on loopback, on SQLite and on PostgreSQL.

    python benchmarks/api_load.py --databases sqlite postgres --participants 40 --trials 20

For each database it makes a fresh database (a temporary SQLite file; a scratch
PostgreSQL database next to --postgres-url, dropped afterwards), migrates it, fills it
with synthetic 6-second samples and one open study, starts gunicorn on a free loopback
port, and runs every participant in its own thread (start, then next / answer until
done, then complete) over keep-alive HTTP connections. Client and server share the
machine, so absolute numbers include the client's own CPU use. Afterwards it counts the
answers in the database: every answer the server accepted must be stored exactly once.

The server runs with DEBUG=0 (the production settings) but without the HTTPS redirect and
without rate limits: every simulated participant shares one address and answers far
faster than a person can (pass --throttle to keep the production limits).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--participants", type=int, default=40, help="concurrent simulated participants")
    parser.add_argument("--trials", type=int, default=20, help="trials per participant")
    parser.add_argument("--kind", default="indistinguishability")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--embed", action="store_true", help="ask next-trial to embed the motion data")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--throttle", action="store_true", help="keep the production rate limits")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        return prepare(args)
    if args.count:
        return count_answers()
    results = []
    for database in args.databases:
        results.append(run_database(database, args))
    print_table(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


def prepare(args):
    """(Subprocess, with DATABASE_URL set) migrate and create samples and the study."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from tests.factories import make_samples, make_study
    make_samples(num_clips=24, num_frames=180, num_classes=4)
    make_study(args.kind, slug="load", trials_per_participant=args.trials, practice_trials=0)


def count_answers():
    """(Subprocess, with DATABASE_URL set) the stored answers of the load study, as JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")
    import django
    django.setup()
    from django.db.models import Count
    from studies.models import Participant, Response
    responses = Response.objects.filter(participant__study__slug="load")
    print(json.dumps({
        "stored": responses.count(),
        "distinct_trials": responses.values("trial").distinct().count(),
        "participants": Participant.objects.filter(study__slug="load").count(),
        "completed": Participant.objects.filter(study__slug="load", status=Participant.COMPLETED).count(),
        "per_participant": sorted({r["n"] for r in responses.values("participant").annotate(n=Count("id"))}),
    }))


def run_database(database: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="api_load_"))
    env = {**os.environ, "DATA_DIR": str(tmp), "DEBUG": "0", "SECRET_KEY": "load-benchmark-only",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT), "SECURE_SSL_REDIRECT": "0",
           "LOG_LEVEL": "WARNING"}
    if not args.throttle:
        env.update(THROTTLE_RATE_IP="", THROTTLE_RATE_TOKEN="")
    scratch = None
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'load.sqlite3'}"
    else:
        scratch, env["DATABASE_URL"] = create_scratch_postgres(args.postgres_url)
    server = None
    try:
        subprocess.run([sys.executable, __file__, "--prepare", "--kind", args.kind, "--trials", str(args.trials)],
                       env=env, check=True, cwd=ROOT)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "studyportal.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads), "--worker-class", "gthread",
             "--log-level", "warning", "--keep-alive", "30"], env=env, cwd=ROOT)
        wait_for(port)
        warm_up(port, args.workers * args.threads)
        result = load(port, args)
        counted = subprocess.run([sys.executable, __file__, "--count"], env=env, check=True, cwd=ROOT,
                                 capture_output=True, text=True)
        db = json.loads(counted.stdout.strip().splitlines()[-1])
        db["lost"] = result["answers_accepted"] - db["stored"]
        db["duplicated"] = db["stored"] - db["distinct_trials"]
        result["database_count"] = db
        result.update({"database": database, "participants": args.participants, "trials": args.trials,
                       "workers": args.workers, "threads": args.threads, "embed": args.embed})
        return result
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if scratch:
            drop_scratch_postgres(args.postgres_url, scratch)
        shutil.rmtree(tmp, ignore_errors=True)


def load(port: int, args) -> dict:
    timings = {"start": [], "next": [], "answer": [], "complete": []}
    errors = []
    accepted = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(args.participants)

    def participant(i):
        rng = np.random.default_rng(i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local = {k: [] for k in timings}
        local_accepted = 0

        def call(name, method, path, body=None):
            payload = json.dumps(body) if body is not None else None
            t0 = time.perf_counter()
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            local[name].append(time.perf_counter() - t0)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
            return json.loads(data)

        try:
            barrier.wait()
            token = call("start", "POST", "/api/studies/load/participations/",
                         {"consent": True, "PROLIFIC_PID": f"load-{i}"})["token"]
            query = "" if args.embed else "?embed=0"
            while True:
                step = call("next", "GET", f"/api/participations/{token}/next/{query}")
                if step["done"]:
                    break
                trial = step["trial"]
                value = trial["options"][int(rng.integers(len(trial["options"])))]["value"]
                reply = call("answer", "POST", f"/api/participations/{token}/answers/",
                             {"trial": trial["trial"], "answer": value, "response_time_ms": 1500,
                              "playback": {"measured_duration_ms": 6000.0, "frames_drawn": 180, "late_frames": 0,
                                           "page_hidden": False}})
                local_accepted += not reply.get("duplicate", False)
            call("complete", "POST", f"/api/participations/{token}/complete/")
        except Exception as e:  # noqa: BLE001 - reported, not swallowed
            with lock:
                errors.append(f"participant {i}: {e}")
        finally:
            conn.close()
            with lock:
                accepted[0] += local_accepted
                for k, v in local.items():
                    timings[k].extend(v)

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(args.participants)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {"wall_s": wall, "errors": errors[:10], "error_count": len(errors), "answers_accepted": accepted[0],
           "requests_per_s": sum(len(v) for v in timings.values()) / wall}
    for name, values in timings.items():
        ms = np.array(values) * 1000
        out[name] = {"count": len(values), "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
                     "p95_ms": float(np.percentile(ms, 95)) if len(ms) else None,
                     "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
                     "per_s": len(values) / wall}
    return out


def print_table(results):
    print(f"{'database':<10} {'endpoint':<9} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    for r in results:
        for name in ("start", "next", "answer", "complete"):
            e = r[name]
            print(f"{r['database']:<10} {name:<9} {e['count']:>6} {e['p50_ms'] or 0:>8.1f} {e['p95_ms'] or 0:>8.1f} "
                  f"{e['p99_ms'] or 0:>8.1f} {e['per_s']:>8.1f}")
        print(f"{r['database']:<10} {'all':<9} {'':>6} {'':>8} {'':>8} {'':>8} {r['requests_per_s']:>8.1f}  "
              f"({r['participants']} concurrent participants x {r['trials']} trials, {r['wall_s']:.1f} s, "
              f"{r['error_count']} errors)")
        db = r.get("database_count", {})
        print(f"{r['database']:<10} answers accepted {r['answers_accepted']}, stored {db.get('stored')}, "
              f"lost {db.get('lost')}, duplicated {db.get('duplicated')}, per participant {db.get('per_participant')}")
        for e in r["errors"]:
            print(f"  error: {e}")


def create_scratch_postgres(url: str) -> tuple[str, str]:
    import psycopg
    base, _, dbname = url.rpartition("/")
    scratch = f"{dbname}_api_load_{os.getpid()}"
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    return scratch, f"{base}/{scratch}"


def drop_scratch_postgres(url: str, scratch: str):
    import psycopg
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def warm_up(port: int, n: int):
    """Let every gunicorn worker finish importing the app before timing starts."""
    deadline = time.time() + 120
    ok = 0
    while ok < 4 * n and time.time() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("GET", "/api/studies/load/")
            ok += conn.getresponse().status == 200
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not start on port {port}")


if __name__ == "__main__":
    main()
