"""Health check for load balancers and process supervisors: 200 when the database answers."""
import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request):
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as e:  # noqa: BLE001 - any database failure means unhealthy
        return JsonResponse({"status": "error", "database": type(e).__name__}, status=503)
    return JsonResponse({"status": "ok", "database": "ok",
                         "database_ms": round(1000 * (time.perf_counter() - started), 2)})
