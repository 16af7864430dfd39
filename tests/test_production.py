"""The production configuration: what DEBUG=0 switches on, the headers responses carry,
static files through WhiteNoise, JSON logs, and the health check."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter with Django set up under the given environment."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "SECURE_SSL_REDIRECT")}
    full_env.update({"DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
                     "DJANGO_SETTINGS_MODULE": "studyportal.settings", **env})
    prelude = "import django, json; django.setup(); from django.conf import settings as s\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_debug_off_turns_on_the_production_settings(tmp_path):
    out = run_python(
        "print(json.dumps({k: getattr(s, k) for k in ('SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', "
        "'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', "
        "'SECURE_REFERRER_POLICY', 'MIDDLEWARE', 'STORAGES', 'PARTICIPANT_THROTTLE_RATES', 'CELERY_BROKER_URL', "
        "'CELERY_TASK_ACKS_LATE', 'CELERY_TASK_REJECT_ON_WORKER_LOST', 'CACHES')}))",
        tmp_path, DEBUG="0", SECRET_KEY="test-secret", REDIS_URL="redis://10.1.2.3:6379/2")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["SECURE_SSL_REDIRECT"] and s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"]
    assert s["SECURE_HSTS_SECONDS"] >= 31536000
    assert s["SECURE_CONTENT_TYPE_NOSNIFF"] and s["X_FRAME_OPTIONS"] == "DENY"
    assert s["SECURE_REFERRER_POLICY"] == "same-origin"
    assert s["MIDDLEWARE"][1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert s["MIDDLEWARE"][0] == "django.middleware.security.SecurityMiddleware"
    assert s["STORAGES"]["staticfiles"]["BACKEND"] == "studyportal.storage.StaticFilesStorage"  # WhiteNoise's
    assert all(s["PARTICIPANT_THROTTLE_RATES"].values())  # rate limits on by default in production
    assert s["CELERY_BROKER_URL"] == "redis://10.1.2.3:6379/2"
    assert s["CACHES"]["default"]["LOCATION"] == "redis://10.1.2.3:6379/2"  # shared throttle counters
    assert s["CELERY_TASK_ACKS_LATE"] and s["CELERY_TASK_REJECT_ON_WORKER_LOST"]


def test_each_production_switch_can_be_set_from_the_environment(tmp_path):
    out = run_python(
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.PARTICIPANT_THROTTLE_RATES, "
        "s.CELERY_BROKER_URL, s.SECURE_PROXY_SSL_HEADER, s.REST_FRAMEWORK['NUM_PROXIES']]))",
        tmp_path, DEBUG="0", SECRET_KEY="test-secret", SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="60",
        THROTTLE_RATE_TOKEN="5/min", CELERY_BROKER_URL="redis://broker:6379/5", SECURE_PROXY_SSL_HEADER="1",
        NUM_PROXIES="1")
    assert out.returncode == 0, out.stderr
    redirect, hsts, rates, broker, proxy_header, proxies = json.loads(out.stdout.strip().splitlines()[-1])
    assert redirect is False and hsts == 60 and rates["participant_token"] == "5/min"
    assert broker == "redis://broker:6379/5" and proxy_header == ["HTTP_X_FORWARDED_PROTO", "https"] and proxies == 1


def test_debug_off_without_a_secret_key_refuses_to_start(tmp_path):
    out = run_python("print('started')", tmp_path, DEBUG="0")
    assert out.returncode != 0 and "started" not in out.stdout
    assert "SECRET_KEY must be set" in out.stderr


def test_development_defaults_keep_http_and_no_limits(tmp_path):
    out = run_python("print(json.dumps([s.DEBUG, getattr(s, 'SECURE_SSL_REDIRECT', False), "
                     "s.PARTICIPANT_THROTTLE_RATES, s.CELERY_BROKER_URL]))", tmp_path)
    assert out.returncode == 0, out.stderr
    debug, redirect, rates, broker = json.loads(out.stdout.strip().splitlines()[-1])
    assert debug is True and redirect is False and not any(rates.values())
    assert broker == os.environ.get("CELERY_BROKER_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


PRODUCTION_HEADERS = dict(DEBUG=False, SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=31536000,
                          SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True)


@pytest.mark.django_db
@override_settings(**PRODUCTION_HEADERS)
def test_responses_carry_the_security_headers_and_http_redirects_to_https():
    client = Client()  # a new client loads the middleware under these settings
    r = client.get("/api/studies/missing/")
    assert r.status_code == 301 and r["Location"] == "https://testserver/api/studies/missing/"
    r = client.get("/api/studies/missing/", secure=True)
    assert r.status_code == 404
    assert r["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert r["X-Frame-Options"] == "DENY"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Referrer-Policy"] == "same-origin"
    r = client.get("/admin/login/", secure=True)
    assert r.status_code == 200 and r.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
@override_settings(**PRODUCTION_HEADERS)
def test_health_check_answers_probes_over_plain_http():
    r = Client().get("/healthz")
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"
    assert "no-cache" in r["Cache-Control"]


@pytest.mark.django_db
def test_health_check_fails_when_the_database_does_not_answer(client, monkeypatch):
    from django.db import connection
    from django.db.utils import OperationalError

    def broken():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "error", "database": "OperationalError"}


def test_collected_static_files_are_compressed_hashed_and_served_by_whitenoise(tmp_path):
    code = """
from django.core.management import call_command
from django.contrib.staticfiles.storage import staticfiles_storage
from django.test import Client
from whitenoise.storage import CompressedManifestStaticFilesStorage
call_command('collectstatic', interactive=False, verbosity=0)
manifest = json.loads((s.STATIC_ROOT / 'staticfiles.json').read_text())['paths']
name = manifest['admin/css/base.css']
c = Client()
plain = c.get('/static/' + name, secure=True)
gz = c.get('/static/' + name, secure=True, HTTP_ACCEPT_ENCODING='gzip')
print(json.dumps({'name': name, 'status': plain.status_code, 'cache': plain['Cache-Control'],
                  'encoding': gz.get('Content-Encoding'), 'gz_file': (s.STATIC_ROOT / (name + '.gz')).exists(),
                  'three': 'vendor/three/' in ' '.join(manifest),
                  'app': (s.STATIC_ROOT / manifest['participant/app.js']).read_text(),
                  'three_module': (s.STATIC_ROOT / manifest['vendor/three/three.module.js']).read_text(),
                  'player': manifest['participant/player.js'], 'core': manifest['vendor/three/three.core.js'],
                  'is_whitenoise': isinstance(staticfiles_storage, CompressedManifestStaticFilesStorage)}))
"""
    out = run_python(code, tmp_path, DEBUG="0", SECRET_KEY="test-secret")
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["name"] != "admin/css/base.css" and r["name"].startswith("admin/css/base.")  # content hash in the name
    assert r["status"] == 200 and "immutable" in r["cache"] and "max-age=315360000" in r["cache"]
    assert r["encoding"] == "gzip" and r["gz_file"]
    assert r["three"]  # the vendored three.js is collected too
    assert r["is_whitenoise"]
    # The ES modules import each other by hashed name too, so a new deployment never mixes a
    # new app.js with a cached old player.js (or three.module.js with an old three.core.js).
    player, core = r["player"].rsplit("/", 1)[1], r["core"].rsplit("/", 1)[1]
    assert player != "player.js" and f'from "./{player}"' in r["app"] and "./player.js" not in r["app"]
    assert core != "three.core.js" and f'from "./{core}"' in r["three_module"]
    assert "./three.core.js" not in r["three_module"]


def test_logs_are_one_json_object_per_line():
    formatter = settings.LOGGING["formatters"]["json"]["()"]()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("attacks.tasks", logging.ERROR, __file__, 1, "shard %d failed", (3,),
                                   sys.exc_info())
    record.run = 7
    line = formatter.format(record)
    entry = json.loads(line)
    assert "\n" not in line  # the traceback's newlines are escaped inside the one JSON line
    assert entry["level"] == "ERROR" and entry["logger"] == "attacks.tasks" and entry["message"] == "shard 3 failed"
    assert entry["run"] == 7 and "ValueError: boom" in entry["exception"]


@pytest.mark.database  # so test.sh's PostgreSQL pass runs it again, there on PostgreSQL
def test_load_benchmark_on_gunicorn_stores_every_answer_exactly_once(tmp_path):
    """benchmarks/api_load.py, CI-sized: gunicorn with the production settings, concurrent
    participants, then the answers counted in the database (the README reports the
    200-participant run)."""
    url = os.environ.get("DATABASE_URL", "")
    database = "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    participants, trials = 12, 3
    out = tmp_path / "load.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "api_load.py"), "--databases", database,
               "--participants", str(participants), "--trials", str(trials), "--workers", "2", "--threads", "4",
               "--out", str(out)]
    if database == "postgres":
        command += ["--postgres-url", url]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    print(done.stdout)
    (r,) = json.loads(out.read_text())
    assert r["database"] == database and r["error_count"] == 0, r["errors"]
    db = r["database_count"]
    assert r["answers_accepted"] == db["stored"] == participants * trials
    assert db["lost"] == 0 and db["duplicated"] == 0 and db["per_participant"] == [trials]
    # Every participation finished (random answers may screen some out rather than complete them).
    assert db["participants"] == r["complete"]["count"] == participants
    for endpoint in ("next", "answer"):
        e = r[endpoint]
        assert e["count"] >= participants * trials and 0 < e["p50_ms"] <= e["p95_ms"] <= e["p99_ms"]
