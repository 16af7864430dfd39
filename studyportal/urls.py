"""Top-level URL map: admin, API schema, and the apps' own routes."""
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from attacks.views import data_file

from .health import healthz

# Browsers ask every site for /favicon.ico; answer with a small stick figure instead of a 404.
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16" stroke="#417690" stroke-width="2" '
           b'fill="none"><circle cx="8" cy="3" r="2"/><path d="M8 5v6M3 7h10M8 11l-3 4M8 11l3 4"/></svg>')


def favicon(request):
    response = HttpResponse(FAVICON, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("favicon.ico", favicon),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("data/<path:relpath>", data_file, name="data-file"),
    path("api/", include(("studies.urls", "studies"))),  # participant API
    path("", include(("studies.web.urls", "study_web"))),  # participant pages /study/<slug>/, staff preview
]
