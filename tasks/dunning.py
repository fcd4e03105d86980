from celery import shared_task

from billing import dunning
from tasks.base import ROW_STATE

# What they did is in the rows they write (notices, connection changes): no result stored.


@shared_task(name="dunning.due_reminders", **ROW_STATE)
def due_reminders() -> int:
    return dunning.due_reminders_create()


@shared_task(name="dunning.auto_suspend", **ROW_STATE)
def auto_suspend() -> int:
    return dunning.auto_suspend_run()
