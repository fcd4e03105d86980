"""Carry a connection change out on the router, retrying while it does not answer."""

from celery import shared_task
from django.conf import settings

from billing.connections import connection_change_apply_now
from billing.network import NetworkError
from tasks.base import RETRY_TRANSIENT


@shared_task(
    name="network.connection_change_apply", bind=True, max_retries=None, acks_late=True
)
def connection_change_apply(self, change_id: int) -> bool:
    try:
        return connection_change_apply_now(change_id=change_id)
    except NetworkError as error:
        if self.request.is_eager:
            # In-process mode must not hold a request in a retry loop; the error is
            # recorded on the change and the customer.
            return False
        backoff = min(300, settings.NETWORK_RETRY_BASE_SECONDS * 2 ** self.request.retries)
        raise self.retry(exc=error, countdown=backoff) from error


@shared_task(name="network.connection_changes_resend", **RETRY_TRANSIENT)
def connection_changes_resend() -> int:
    from billing.connections import connection_changes_resend as resend

    return resend()
