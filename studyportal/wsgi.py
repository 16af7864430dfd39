"""WSGI entry point (gunicorn studyportal.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")
application = get_wsgi_application()
