#!/usr/bin/env bash
# The main job on embedded defaults (SQLite, CPU): import real data, train, attack, report, serve admin.
set -euo pipefail
source "$(dirname "$0")/scripts/venv.sh"
python manage.py migrate --noinput
python manage.py demo "$@"
echo
echo "Serving on http://127.0.0.1:${PORT:-8000}/admin/ (Ctrl-C to stop)"
exec python manage.py runserver "127.0.0.1:${PORT:-8000}" --noreload
