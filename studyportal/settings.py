"""Settings read from the environment; embedded defaults are SQLite and a local data folder."""
import json
import logging
import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _flag("DEBUG", default=True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]

# Everything the platform writes (database file, checkpoints, figures, reports).
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "attacks",
    "studies",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "studyportal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "studyportal.wsgi.application"
ASGI_APPLICATION = "studyportal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Long imports and generation runs write while the admin reads.
    # Writers wait for each other (IMMEDIATE) instead of failing when a read turns into a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=30, transaction_mode="IMMEDIATE")
    # The test database is a file (one per test process), not memory, so that the Celery
    # worker processes started by the tests can open it too.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME") or str(
        Path(tempfile.gettempdir()) / f"studyportal-test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SMART study portal API",
    "DESCRIPTION": "Participant-facing API of the perceptual studies on adversarial skeletal motions.",
    "VERSION": "1.0.0",
    # Three different `status` choice sets appear in the participant API's bodies: named
    # here, else drf-spectacular names them after a hash of their values.
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "studies.models.Study.STATUS_CHOICES",
        "ParticipationStatusEnum": "studies.models.Participant.STATUS_CHOICES",
        "SeriesStatusEnum": "studies.models.SeriesParticipant.STATUS_CHOICES",
    },
}

# ---- production: selected by DEBUG being off ------------------------------------------------
# Behind a TLS-terminating proxy, set SECURE_PROXY_SSL_HEADER=1 so that Django trusts its
# X-Forwarded-Proto header; SECURE_SSL_REDIRECT=0 serves plain HTTP (loopback benchmarks).
if not DEBUG:
    SECURE_SSL_REDIRECT = _flag("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = _flag("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = _flag("SECURE_HSTS_PRELOAD", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes from the load balancer come over plain HTTP
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = os.environ.get("SECURE_REFERRER_POLICY", "same-origin")
X_FRAME_OPTIONS = "DENY"
if _flag("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# Static files: WhiteNoise serves them from gunicorn; in production compressed and with
# content hashes in their names and in the ES modules' imports (run `manage.py collectstatic`
# before starting).
if not DEBUG:  # in development runserver serves them from the source folders
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": os.environ.get("STATICFILES_STORAGE") or (
        "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
        else "studyportal.storage.StaticFilesStorage")},  # WhiteNoise's, hashing JS module imports too
}

# Cache: Redis when REDIS_URL (or CACHE_URL) is set, so that every gunicorn worker shares the
# rate-limit counters and the encoded motions; a per-process memory cache otherwise.
_cache_url = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
CACHES = {"default": (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
    if _cache_url else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})}

# Structured logging: one JSON object per line on stdout (read by journald, Docker, ...).
class JSONLogFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, and the exception if any."""

    def format(self, record):
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        for key in ("status_code", "task_id", "run", "shard"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JSONLogFormatter}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Participant API rate limits (DRF throttles in studies/throttling.py, counted in the cache).
# Rates are "N/s|min|hour|day"; empty disables a limit. Everyone behind one NAT shares an IP,
# so the per-IP limit is the generous one. Set NUM_PROXIES behind a reverse proxy so that the
# client address comes from X-Forwarded-For.
PARTICIPANT_THROTTLE_RATES = {
    "participant_ip": os.environ.get("THROTTLE_RATE_IP", "" if DEBUG else "1200/min"),
    "participant_token": os.environ.get("THROTTLE_RATE_TOKEN", "" if DEBUG else "120/min"),
}
_num_proxies = os.environ.get("NUM_PROXIES")
REST_FRAMEWORK["NUM_PROXIES"] = int(_num_proxies) if _num_proxies else None

# Celery: sample generation on workers (attacks/tasks.py), Redis as broker. A shard is
# acknowledged only when done, so a worker killed mid-shard leaves it to be delivered again
# (after CELERY_VISIBILITY_TIMEOUT seconds); what it stored is kept and skipped on retry.
CELERY_BROKER_URL = (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
                     or "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "studyportal")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Where a worker attacks: "auto" is the first CUDA device it sees (CUDA_VISIBLE_DEVICES), else the CPU.
GENERATION_DEVICE = os.environ.get("GENERATION_DEVICE", "auto")
