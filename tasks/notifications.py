from celery import shared_task

from billing import notifications
from tasks.base import RETRY_TRANSIENT


# The notices hold the state: no result is stored.
@shared_task(name="notifications.dispatch", bind=True, ignore_result=True, **RETRY_TRANSIENT)
def notifications_dispatch(self) -> int:
    return notifications.notifications_dispatch(in_process=self.request.is_eager)
