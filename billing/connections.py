"""Connection changes: every change of a customer's ``is_active``, carried out on the
router by the network queue, retried until the router confirms it."""

import uuid

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import ConnectionChange, Customer
from core.enums import ConnectionType
from core.queue import publish, publish_on_commit


def connection_change_request(
    *, customer: Customer, enable: bool, reason: str, requested_by: User | None
) -> ConnectionChange:
    """Record a change of the connection and hand it to the network task after commit.
    Older unconfirmed changes of the customer are superseded by this one."""
    ConnectionChange.objects.filter(
        customer=customer, confirmed_at__isnull=True, superseded=False
    ).update(superseded=True)
    change = ConnectionChange.objects.create(
        customer=customer,
        enable=enable,
        reason=reason,
        requested_by=requested_by,
        task_id=str(uuid.uuid4()),
    )
    publish_on_commit(
        "network.connection_change_apply", args=[change.pk], task_id=change.task_id
    )
    return change


def connection_change_apply_now(*, change_id: int) -> bool:
    """Carry a change out on the router. True when confirmed (or superseded); raises
    ``NetworkError`` when the router did not confirm, after recording the error.

    The customer's row is locked for the router call, so a customer's changes reach
    the router one at a time and an older change never lands after a newer one.
    Only PPPoE customers have a secret to switch; for the others there is nothing
    to do on the router."""
    from billing.network import NetworkError, network_backend

    failure = None
    with transaction.atomic():
        customer_id = ConnectionChange.objects.values_list("customer_id", flat=True).get(
            pk=change_id
        )
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        change = ConnectionChange.objects.get(pk=change_id)
        if change.confirmed_at or change.superseded:
            return True
        change.attempts += 1
        change.save(update_fields=["attempts"])
        try:
            if customer.connection_type == ConnectionType.PPPOE and customer.username:
                network_backend().set_enabled(username=customer.username, enabled=change.enable)
        except NetworkError as error:
            failure = error
        else:
            now = timezone.now()
            ConnectionChange.objects.filter(pk=change.pk).update(confirmed_at=now, last_error="")
            Customer.objects.filter(pk=customer.pk).update(
                network_confirmed_at=now,
                network_confirmed_active=change.enable,
                network_last_error="",
            )
            return True
    message = str(failure)[:1000]
    ConnectionChange.objects.filter(pk=change_id).update(last_error=message)
    Customer.objects.filter(pk=customer_id).update(network_last_error=message)
    raise failure


def connection_changes_resend(*, stale_seconds: int = 60) -> int:
    """Send again every change the router has not confirmed (lost messages, long outages)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_seconds)
    pending = ConnectionChange.objects.filter(
        confirmed_at__isnull=True, superseded=False, created_at__lt=cutoff
    ).values_list("pk", "task_id")
    return sum(
        publish("network.connection_change_apply", args=[pk], task_id=task_id)
        for pk, task_id in pending
    )
