from celery import shared_task

from billing import dunning
from tasks.base import RETRY_TRANSIENT


@shared_task(name="dunning.due_reminders", **RETRY_TRANSIENT)
def due_reminders() -> int:
    return dunning.due_reminders_create()


@shared_task(name="dunning.auto_suspend", **RETRY_TRANSIENT)
def auto_suspend() -> int:
    return dunning.auto_suspend_run()
