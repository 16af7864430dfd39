#!/usr/bin/env bash
# The test suite: every test on SQLite, then the database tests (marker `database`: browser,
# Celery worker and API tests included) again on PostgreSQL when one answers, all but the
# end-to-end demo, whose database work the other tests cover.
set -euo pipefail
source "$(dirname "$0")/scripts/venv.sh"
# Browser tests drive Debian's Chromium; without it they skip (and fail in CI).
if ! scripts/install_chromium.sh; then
  [ -n "${CI:-}" ] && { echo "could not install chromium" >&2; exit 1; }
  echo "chromium unavailable: browser tests will be skipped" >&2
fi
python -m pytest "$@"
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
if python - "$PG_URL" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
except Exception as e:
    print(f"PostgreSQL not reachable ({e}); skipping the PostgreSQL pass", file=sys.stderr)
    sys.exit(1)
PY
then
  echo "== database tests again on PostgreSQL ($PG_URL)"
  # exit status 5: the arguments selected no database test
  DATABASE_URL="$PG_URL" python -m pytest -m database --ignore=tests/test_demo.py "$@" || [ $? -eq 5 ]
elif [ -n "${CI:-}" ]; then
  echo "PostgreSQL is required in CI" >&2
  exit 1
fi
