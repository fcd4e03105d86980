"""Due reminders and auto-suspend, run daily by the scheduler."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.connections import connection_change_request
from billing.models import ConnectionChange, Customer, Notification, Payment
from billing.notifications import notifications_dispatch_soon
from core.enums import Status


def _unpaid_older_than(days: int):
    return Payment.objects.filter(
        voided_at__isnull=True,
        paid=False,
        amount__lt=F("bill_amount"),
        created_at__lte=timezone.now() - timedelta(days=days),
        customer__status=Status.ACTIVE,
        customer__is_free=False,
    )


def due_reminders_create() -> int:
    """One reminder a day per unpaid record older than ``DUE_REMINDER_AFTER_DAYS``."""
    today = timezone.localdate().isoformat()
    now = timezone.now()
    rows = []
    records = _unpaid_older_than(settings.DUE_REMINDER_AFTER_DAYS).values_list(
        "pk", "customer_id", "customer__phone", "customer__email"
    )
    for payment_id, customer_id, phone, email in records.iterator(chunk_size=5000):
        for channel, address in ((Notification.Channel.SMS, phone),
                                 (Notification.Channel.EMAIL, email)):
            if address:
                rows.append(Notification(
                    customer_id=customer_id, payment_id=payment_id,
                    event=Notification.Event.DUE_REMINDER,
                    event_key=f"due:{payment_id}:{today}", channel=channel, next_attempt_at=now,
                ))
    with transaction.atomic():
        Notification.objects.bulk_create(rows, batch_size=5000, ignore_conflicts=True)
        if rows:
            notifications_dispatch_soon()
    return len(rows)


def auto_suspend_run() -> int:
    """Switch off customers whose bill is unpaid past the grace period (when enabled)."""
    grace = settings.AUTO_SUSPEND_GRACE_DAYS
    if grace is None:
        return 0
    from billing.notifications import notify

    overdue = _unpaid_older_than(grace).filter(customer__is_active=True)
    suspended = 0
    for payment_id, customer_id in overdue.values_list("pk", "customer_id"):
        with transaction.atomic():
            customer = Customer.objects.select_for_update().get(pk=customer_id)
            payment = Payment.objects.get(pk=payment_id)
            if not customer.is_active or payment.paid:
                continue
            customer.is_active = False
            customer.save(update_fields=["is_active", "updated_at"])
            connection_change_request(
                customer=customer, enable=False,
                reason=ConnectionChange.Reason.AUTO_SUSPEND, requested_by=None,
            )
            notify(customer=customer, event=Notification.Event.SUSPENDED,
                   key=f"suspend:{payment.pk}", payment=payment)
            suspended += 1
    return suspended
