"""Staff-only access to files the backend wrote under DATA_DIR (figures, reports)."""
import mimetypes
from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404


@staff_member_required
def data_file(request, relpath):
    root = Path(settings.DATA_DIR).resolve()
    target = (root / relpath).resolve()
    if root not in target.parents or not target.is_file():
        raise Http404("no such file")
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(open(target, "rb"), content_type=content_type)
