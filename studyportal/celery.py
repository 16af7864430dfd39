"""The Celery application: workers run `attacks.tasks` (sample generation shards).

    celery -A studyportal worker --pool solo -c 1     # one per GPU, with CUDA_VISIBLE_DEVICES

Configuration comes from Django settings under the CELERY_ prefix (broker from
CELERY_BROKER_URL / REDIS_URL).
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyportal.settings")

app = Celery("studyportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
