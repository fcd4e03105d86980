"""Handing work to Celery, by task name, after the database has committed it.

The domain never imports ``tasks/``: it names the task (``"bills.run_chunk"``)
and this module sends it. Each name's first part is its workload, and the
workload's queue comes from one table in the settings (``TASK_QUEUES``).

Publishing happens in ``transaction.on_commit`` so a worker never looks for a row
that is not there yet. When the broker is down the publish fails quickly and
the request still succeeds: what it recorded stays in the database and a
periodic sweep hands it over once the broker is back.
"""

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def queue_for(task_name: str) -> str:
    """The queue of a task's workload (the part of its name before the dot)."""
    workload = task_name.partition(".")[0]
    queue = settings.TASK_QUEUES.get(workload, settings.CELERY_TASK_DEFAULT_QUEUE)
    return settings.TASK_QUEUE_PREFIX + queue


def route_task(name, args, kwargs, options, task=None, **kw) -> dict:
    """Celery's router (``CELERY_TASK_ROUTES``): every task to its workload's queue."""
    return {"queue": queue_for(name)}


def all_queues() -> list[str]:
    """Every queue a worker that serves all workloads listens to."""
    names = [*settings.TASK_QUEUES.values(), settings.CELERY_TASK_DEFAULT_QUEUE]
    return [settings.TASK_QUEUE_PREFIX + name for name in dict.fromkeys(names)]


def publish(
    name: str,
    *,
    args: list | None = None,
    task_id: str | None = None,
    expires: float | None = None,
    countdown: float | None = None,
) -> bool:
    """Send the task called ``name`` now; False (logged) when the broker could not take it."""
    from tasks import app

    try:
        if app.conf.task_always_eager:
            # send_task ignores eager mode: run the registered task in-process (the
            # task modules are imported on first use, as a worker imports them).
            app.loader.import_default_modules()
            app.tasks[name].apply_async(args=args or [], task_id=task_id)
        else:
            app.send_task(name, args=args or [], task_id=task_id, expires=expires,
                          countdown=countdown)
    except Exception:
        if app.conf.task_always_eager:
            raise  # in-process: a failure is the task's own, not the broker's
        logger.warning("could not publish %s %s; a sweep will retry", name, task_id,
                       exc_info=True)
        return False
    return True


def publish_on_commit(
    name: str,
    *,
    args: list | None = None,
    task_id: str | None = None,
    then: Callable[[], None] | None = None,
) -> None:
    """Publish after the current transaction commits; ``then`` runs if the broker took it."""

    def send() -> None:
        if publish(name, args=args, task_id=task_id) and then is not None:
            then()

    transaction.on_commit(send)
