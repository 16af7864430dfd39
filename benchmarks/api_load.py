"""Load benchmark of the participant API: p50 / p95 / p99 latency and throughput of the
start, next-trial, answer and complete endpoints with many simulated participants,
against the app served by gunicorn on loopback, on SQLite and on PostgreSQL.

    python benchmarks/api_load.py --databases postgres --modes flood realistic --participants 200 1000

Two participant models (`--modes`):

* flood: every participant starts at the same instant (a barrier) and answers as fast as
  the server allows (next-trial, answer, ..., complete; motions not embedded unless
  --embed). A stress test: it measures throughput and queueing, not what people see.
* realistic: arrivals spread evenly (in random order) over --ramp-seconds (a minute);
  each trial is fetched as the browser fetches it (motions embedded), then the
  participant waits the trial's playback (`playback.total_seconds` of the plan the
  server sent) plus a response time drawn from a log-normal distribution (median
  --response-median 1.5 s, log-sd --response-sigma 0.5: 90 % of answers 0.8-3.4 s), and
  answers with that response time. --time-scale N divides every wait and the ramp by N
  to shorten a run (answers then arrive before the playback could have ended and are
  flagged 'early'; the default 1 is real time).

For each database, mode and participant count it makes a fresh database (a temporary
SQLite file; a scratch PostgreSQL database next to --postgres-url, dropped afterwards),
migrates it, fills it with synthetic 6-second samples and one open study, starts gunicorn
on a free loopback port and runs every participant in its own thread over keep-alive
HTTP connections. Client and server share the machine, so absolute numbers include the
client's own CPU use. A probe thread asks GET /healthz every --healthz-interval seconds
during the run. Server time per request comes from gunicorn's access log (%(D)s: from
the request parsed to the response written, inside the worker), so each endpoint's server
time can be set against /healthz (one database round trip, no application work) on the
same server in the same run. Afterwards it counts the answers in the database: every
answer the server accepted must be stored exactly once.

The server runs with DEBUG=0 (the production settings) and CONN_MAX_AGE=--conn-max-age
(persistent database connections, as a deployment sets it), but without the HTTPS
redirect and without rate limits: every simulated participant shares one address (pass
--throttle to keep the production limits).
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
    parser.add_argument("--participants", type=int, nargs="+", default=[40],
                        help="simulated participants (one run per value)")
    parser.add_argument("--modes", nargs="+", default=["flood"], choices=["flood", "realistic"],
                        help="participant models (one run per value)")
    parser.add_argument("--trials", type=int, default=20, help="trials per participant")
    parser.add_argument("--kind", default="indistinguishability")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--embed", action="store_true", help="flood: ask next-trial to embed the motion data "
                                                             "(realistic always does, as the browser does)")
    parser.add_argument("--ramp-seconds", type=float, default=60.0, help="realistic: arrivals spread over this")
    parser.add_argument("--response-median", type=float, default=1.5,
                        help="realistic: median response time after the playback, seconds (log-normal)")
    parser.add_argument("--response-sigma", type=float, default=0.5, help="realistic: log-sd of the response time")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="realistic: divide every wait and the ramp by this (1 = real time)")
    parser.add_argument("--healthz-interval", type=float, default=0.1,
                        help="seconds between the probe's GET /healthz requests")
    parser.add_argument("--conn-max-age", type=int, default=60, help="CONN_MAX_AGE of the server")
    parser.add_argument("--seed", type=int, default=0, help="seeds arrivals, answers and response times")
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
        for mode in args.modes:
            for participants in args.participants:
                results.append(run_database(database, args, mode, participants))
                print_table(results[-1:], header=len(results) == 1)  # each run as it ends
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


ENDPOINTS = ("start", "next", "answer", "complete")
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"  # method, path, status, microseconds in the worker


def run_database(database: str, args, mode: str = "flood", participants: int = 40) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="api_load_"))
    env = {**os.environ, "DATA_DIR": str(tmp), "DEBUG": "0", "SECRET_KEY": "load-benchmark-only",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT), "SECURE_SSL_REDIRECT": "0",
           "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": str(args.conn_max_age)}
    if not args.throttle:
        env.update(THROTTLE_RATE_IP="", THROTTLE_RATE_TOKEN="")
    scratch = None
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'load.sqlite3'}"
    else:
        scratch, env["DATABASE_URL"] = create_scratch_postgres(args.postgres_url)
    server = None
    access_log = tmp / "access.log"
    try:
        subprocess.run([sys.executable, __file__, "--prepare", "--kind", args.kind, "--trials", str(args.trials)],
                       env=env, check=True, cwd=ROOT)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "studyportal.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads), "--worker-class", "gthread",
             "--log-level", "warning", "--keep-alive", "30", "--access-logfile", str(access_log),
             "--access-logformat", ACCESS_LOG_FORMAT], env=env, cwd=ROOT)
        wait_for(port)
        warm_up(port, args.workers * args.threads)
        time.sleep(0.2)
        log_start = access_log.stat().st_size if access_log.exists() else 0
        load_before = os.getloadavg()
        result = load(port, args, mode, participants)
        result["load_average"] = {"before": load_before[0], "after": os.getloadavg()[0]}
        server.terminate()
        server.wait(timeout=20)
        server = None
        add_server_times(result, access_log, log_start)
        counted = subprocess.run([sys.executable, __file__, "--count"], env=env, check=True, cwd=ROOT,
                                 capture_output=True, text=True)
        db = json.loads(counted.stdout.strip().splitlines()[-1])
        db["lost"] = result["answers_accepted"] - db["stored"]
        db["duplicated"] = db["stored"] - db["distinct_trials"]
        result["database_count"] = db
        result.update({"database": database, "mode": mode, "participants": participants, "trials": args.trials,
                       "workers": args.workers, "threads": args.threads,
                       "embed": args.embed or mode == "realistic", "conn_max_age": args.conn_max_age,
                       "time_scale": args.time_scale if mode == "realistic" else None,
                       "ramp_seconds": args.ramp_seconds if mode == "realistic" else None})
        return result
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if scratch:
            drop_scratch_postgres(args.postgres_url, scratch)
        shutil.rmtree(tmp, ignore_errors=True)


def percentiles(seconds) -> dict:
    ms = np.asarray(seconds, dtype=float) * 1000
    if not len(ms):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def endpoint_of(method: str, path: str) -> str | None:
    """The benchmark's name for a request line of the access log (None: not timed)."""
    if path == "/healthz":
        return "healthz"
    if method == "POST" and path.startswith("/api/studies/") and path.endswith("/participations/"):
        return "start"
    if path.startswith("/api/participations/"):
        return {"next": "next", "answers": "answer", "complete": "complete"}.get(path.rstrip("/").rsplit("/", 1)[-1])
    return None


def add_server_times(result: dict, access_log: Path, offset: int):
    """Server time per endpoint (gunicorn's access log from `offset`), and next / answer
    as multiples of /healthz's on the same server in the same run."""
    times = {k: [] for k in (*ENDPOINTS, "healthz")}
    with open(access_log, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        for line in f:
            parts = line.split()
            if len(parts) != 4 or not parts[3].isdigit():
                continue
            name = endpoint_of(parts[0], parts[1])
            if name is not None:
                times[name].append(int(parts[3]) / 1e6)
    for name, values in times.items():
        result.setdefault(name, {"count": len(values)})["server"] = {"count": len(values), **percentiles(values)}
    health = result["healthz"]["server"]
    result["server_vs_healthz"] = {
        name: {q: (result[name]["server"][f"{q}_ms"] / health[f"{q}_ms"]
                   if health[f"{q}_ms"] and result[name]["server"][f"{q}_ms"] is not None else None)
               for q in ("p50", "p95")}
        for name in ENDPOINTS}


def load(port: int, args, mode: str = "flood", participants: int = 40) -> dict:
    """Run `participants` simulated participants against the server (module docstring)."""
    timings = {k: [] for k in ENDPOINTS}
    errors = []
    accepted = [0]
    reconnects = [0]
    lock = threading.Lock()
    realistic = mode == "realistic"
    scale = args.time_scale if realistic else 1.0
    rng = np.random.default_rng(args.seed)
    if realistic:  # evenly spread arrivals, in random order, over the ramp
        arrivals = (rng.permutation(participants) + rng.uniform(size=participants)) \
            * args.ramp_seconds / participants / scale
    else:
        barrier = threading.Barrier(participants)
    embed = args.embed or realistic
    stop = threading.Event()
    health = []

    def participant(i):
        prng = np.random.default_rng([args.seed, i])
        conn = [http.client.HTTPConnection("127.0.0.1", port, timeout=120)]
        local = {k: [] for k in timings}
        local_accepted = 0
        local_reconnects = 0

        def call(name, method, path, body=None):
            nonlocal local_reconnects
            payload = json.dumps(body) if body is not None else None
            t0 = time.perf_counter()
            for attempt in (0, 1):  # an idle keep-alive connection the server closed: reconnect once
                try:
                    conn[0].request(method, path, body=payload, headers={"Content-Type": "application/json"})
                    response = conn[0].getresponse()
                    data = response.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if attempt:
                        raise
                    local_reconnects += 1
                    conn[0].close()
                    conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    t0 = time.perf_counter()
            local[name].append(time.perf_counter() - t0)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
            return json.loads(data)

        try:
            if realistic:
                time.sleep(max(0.0, started + arrivals[i] - time.perf_counter()))
            else:
                barrier.wait()
            token = call("start", "POST", "/api/studies/load/participations/",
                         {"consent": True, "PROLIFIC_PID": f"load-{i}"})["token"]
            query = "" if embed else "?embed=0"
            while True:
                step = call("next", "GET", f"/api/participations/{token}/next/{query}")
                if step["done"]:
                    break
                trial = step["trial"]
                value = trial["options"][int(prng.integers(len(trial["options"])))]["value"]
                playback_s = float(trial["playback"]["total_seconds"])
                response_s = 1.5
                if realistic:  # watch the playback, then decide
                    response_s = float(prng.lognormal(np.log(args.response_median), args.response_sigma))
                    time.sleep((playback_s + response_s) / scale)
                reply = call("answer", "POST", f"/api/participations/{token}/answers/",
                             {"trial": trial["trial"], "answer": value, "response_time_ms": int(response_s * 1000),
                              "playback": {"measured_duration_ms": playback_s * 1000,
                                           "frames_drawn": max(trial["playback"]["frames"]), "late_frames": 0,
                                           "page_hidden": False}})
                local_accepted += not reply.get("duplicate", False)
            call("complete", "POST", f"/api/participations/{token}/complete/")
        except Exception as e:  # noqa: BLE001 - reported, not swallowed
            with lock:
                errors.append(f"participant {i}: {e}")
        finally:
            conn[0].close()
            with lock:
                accepted[0] += local_accepted
                reconnects[0] += local_reconnects
                for k, v in local.items():
                    timings[k].extend(v)

    def probe():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                health.append(time.perf_counter() - t0)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            stop.wait(args.healthz_interval)
        conn.close()

    threads = [threading.Thread(target=participant, args=(i,), daemon=True) for i in range(participants)]
    prober = threading.Thread(target=probe, daemon=True)
    started = time.perf_counter()
    prober.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    stop.set()
    prober.join()
    out = {"wall_s": wall, "errors": errors[:10], "error_count": len(errors), "answers_accepted": accepted[0],
           "reconnects": reconnects[0], "requests_per_s": sum(len(v) for v in timings.values()) / wall,
           "healthz": {"count": len(health), **percentiles(health), "per_s": len(health) / wall}}
    for name, values in timings.items():
        out[name] = {"count": len(values), **percentiles(values), "per_s": len(values) / wall}
    return out


def _ms(value) -> str:
    return f"{value:>8.1f}" if value is not None else f"{'-':>8}"


def print_table(results, header: bool = True):
    if header:
        print(f"{'database':<9} {'mode':<9} {'N':>5} {'endpoint':<9} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p99 ms':>8} | {'srv p50':>8} {'srv p95':>8} {'srv p99':>8} {'x hz p50':>8} {'x hz p95':>8} "
              f"{'req/s':>7}", flush=True)
    for r in results:
        head = f"{r['database']:<9} {r['mode']:<9} {r['participants']:>5}"
        for name in (*ENDPOINTS, "healthz"):
            e = r[name]
            srv = e.get("server", {})
            ratio = r.get("server_vs_healthz", {}).get(name, {})
            print(f"{head} {name:<9} {e['count']:>6} {_ms(e.get('p50_ms'))} {_ms(e.get('p95_ms'))} "
                  f"{_ms(e.get('p99_ms'))} | {_ms(srv.get('p50_ms'))} {_ms(srv.get('p95_ms'))} "
                  f"{_ms(srv.get('p99_ms'))} {_ms(ratio.get('p50'))} {_ms(ratio.get('p95'))} "
                  f"{e.get('per_s', 0):>7.1f}")
        load_avg = r.get("load_average", {})
        print(f"{head} all: {r['requests_per_s']:.1f} req/s, {r['trials']} trials each, {r['wall_s']:.1f} s, "
              f"{r['error_count']} errors, {r['reconnects']} reconnects, load average "
              f"{load_avg.get('before', 0):.1f} -> {load_avg.get('after', 0):.1f}"
              + (f", time scale {r['time_scale']:g}" if r.get("time_scale") else ""))
        db = r.get("database_count", {})
        print(f"{head} answers accepted {r['answers_accepted']}, stored {db.get('stored')}, "
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
