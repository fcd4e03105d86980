"""``celery -A tasks beat`` with the DatabaseScheduler starts and sends what is due."""

import json
from datetime import datetime, timedelta

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.queue import queue_for
from tests.worker.conftest import (
    START_TIMEOUT,
    Service,
    _spawn,
    executable,
    service_env,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_beat_sends_the_registered_schedules_to_the_workers(producer, queue, start_worker,
                                                             tmp_path):
    call_command("setup_schedules")
    # As if beat had last sent the sweep an hour ago: due at once.
    PeriodicTask.objects.filter(task="notifications.dispatch").update(
        last_run_at=timezone.now() - timedelta(hours=1)
    )
    worker = start_worker()
    env = service_env(producer.broker_url, queue)
    argv = [executable("celery"), "-A", "tasks", "beat", "--loglevel=INFO",
            "-S", "django_celery_beat.schedulers:DatabaseScheduler",
            f"--schedule={tmp_path / 'beat-schedule'}"]
    beat = Service("beat", _spawn(argv, env, tmp_path / "beat.log"), tmp_path / "beat.log")
    try:
        wait_until(
            lambda: "Sending due task Outbox sweep" in beat.output(),
            timeout=START_TIMEOUT, interval=0.2, message="beat to send the outbox sweep",
            watch=[beat],
        )
        wait_until(
            lambda: "notifications.dispatch" in worker.output()
            and "succeeded" in worker.output(),
            timeout=START_TIMEOUT, interval=0.2, message="the worker to run the sweep",
            watch=[worker],
        )
        assert "Traceback" not in beat.output()
        assert "DatabaseScheduler: Schedule changed." in beat.output() or (
            "beat: Starting..." in beat.output()
        )
    finally:
        beat.stop()


def test_beat_sends_sweeps_that_expire_before_the_next_is_due(producer, queue, tmp_path):
    """No worker: the sweep beat sends waits in the queue, stamped with its expiry."""
    call_command("setup_schedules")
    PeriodicTask.objects.filter(task="notifications.dispatch").update(
        last_run_at=timezone.now() - timedelta(hours=1)
    )
    env = service_env(producer.broker_url, queue)
    argv = [executable("celery"), "-A", "tasks", "beat", "--loglevel=INFO",
            "-S", "django_celery_beat.schedulers:DatabaseScheduler",
            f"--schedule={tmp_path / 'beat-schedule'}"]
    beat = Service("beat", _spawn(argv, env, tmp_path / "beat.log"), tmp_path / "beat.log")
    client = redis.Redis.from_url(producer.broker_url)
    try:
        raw = wait_until(lambda: client.lindex(queue_for("notifications.dispatch"), 0),
                         timeout=START_TIMEOUT, interval=0.2, watch=[beat],
                         message="beat to queue the outbox sweep")
    finally:
        beat.stop()
        client.close()
    headers = json.loads(raw)["headers"]
    assert headers["task"] == "notifications.dispatch"
    sent = datetime.fromisoformat(headers["expires"]) - timedelta(seconds=50)
    assert abs((sent - timezone.now()).total_seconds()) < START_TIMEOUT
