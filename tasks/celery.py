"""The Celery app: ``celery -A tasks worker`` and ``celery -A tasks beat``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("isp_billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = (
    "tasks.bills",
    "tasks.dunning",
    "tasks.network",
    "tasks.notifications",
    "tasks.payments",
    "tasks.reconciliation",
)
