"""Handing work to Celery after the database has committed it.

Publishing happens in ``transaction.on_commit`` so a worker never looks for a row
that is not there yet. When the broker is down the publish fails quickly and
the request still succeeds: what it recorded stays in the database and a
periodic sweep hands it over once the broker is back.
"""

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


def publish(task, *, args: list | None = None, task_id: str | None = None) -> bool:
    """Send ``task`` now; False (logged) when the broker could not take it."""
    try:
        task.apply_async(args=args or [], task_id=task_id)
    except Exception:
        if task.app.conf.task_always_eager:
            raise  # in-process: a failure is the task's own, not the broker's
        logger.warning("could not publish %s %s; a sweep will retry", task.name, task_id,
                       exc_info=True)
        return False
    return True


def publish_on_commit(
    task,
    *,
    args: list | None = None,
    task_id: str | None = None,
    then: Callable[[], None] | None = None,
) -> None:
    """Publish after the current transaction commits; ``then`` runs if the broker took it."""

    def send() -> None:
        if publish(task, args=args, task_id=task_id) and then is not None:
            then()

    transaction.on_commit(send)
