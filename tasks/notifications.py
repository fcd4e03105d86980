from celery import shared_task

from billing import notifications
from tasks.base import RETRY_TRANSIENT


@shared_task(name="notifications.dispatch", **RETRY_TRANSIENT)
def notifications_dispatch() -> int:
    return notifications.notifications_send_due()
