"""Carry a connection change out on the router, retrying while it does not answer.

The change's state lives in its ConnectionChange row (results are not stored); the
row also says when the next attempt is due, so a duplicate delivery does nothing."""

from celery import shared_task

from billing.connections import connection_change_attempt
from tasks.base import RETRY_TRANSIENT


@shared_task(
    name="network.connection_change_apply", bind=True, max_retries=None, acks_late=True,
    ignore_result=True,
)
def connection_change_apply(self, change_id: int) -> bool:
    delivery = connection_change_attempt(change_id=change_id, scheduled=True)
    if delivery.retry_in is None:
        return delivery.done
    if self.request.is_eager:
        # In-process mode must not hold a request in a retry loop; the error and the
        # next attempt's time are recorded, and the sweep sends it when overdue.
        return False
    raise self.retry(exc=delivery.error, countdown=delivery.retry_in)


@shared_task(name="network.connection_changes_resend", ignore_result=True, **RETRY_TRANSIENT)
def connection_changes_resend() -> int:
    from billing.connections import connection_changes_resend as resend

    return resend()
