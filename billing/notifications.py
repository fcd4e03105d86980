"""The notification outbox: notices are written in the transaction of the event they
report, and a dispatcher sends them later, each (event, channel) at most once.

A row is claimed (SENDING) in a short transaction before it is sent, so two
dispatchers never send the same row; a claim left by a worker that died is
taken again after ``CLAIM_TIMEOUT``.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from billing.messaging import DeliveryError, send_email, sms_backend
from billing.models import ZERO, Customer, Notification, Payment
from core.queue import publish_on_commit

CLAIM_TIMEOUT = timedelta(minutes=10)


def notify(*, customer: Customer, event: str, key: str, payment: Payment | None = None) -> int:
    """Write the notice for every channel the customer can be reached on; a second call
    for the same key writes nothing. Call inside the event's transaction."""
    now = timezone.now()
    rows = [
        Notification(customer=customer, payment=payment, event=event, event_key=key,
                     channel=channel, next_attempt_at=now)
        for channel, address in (
            (Notification.Channel.SMS, customer.phone),
            (Notification.Channel.EMAIL, customer.email),
        )
        if address
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    if rows:
        notifications_dispatch_soon()
    return len(rows)


def notifications_dispatch_soon() -> None:
    publish_on_commit("notifications.dispatch")


def _due(now) -> Q:
    return Q(state=Notification.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Notification.State.SENDING, claimed_at__lt=now - CLAIM_TIMEOUT
    )


def _claim(batch_size: int) -> list[Notification]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(_due(now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return []
        Notification.objects.filter(pk__in=ids).update(
            state=Notification.State.SENDING, claimed_at=now
        )
    return list(
        Notification.objects.filter(pk__in=ids).select_related(
            "customer__package", "payment"
        )
    )


def render(notification: Notification) -> tuple[str, str]:
    payment = notification.payment
    due = max(payment.bill_amount - payment.amount, ZERO) if payment else ZERO
    context = {"customer": notification.customer, "payment": payment, "due": due,
               "event": notification.event}
    text = render_to_string(f"notifications/{notification.event}.txt", context).strip()
    subject = render_to_string("notifications/subject.txt", context).strip()
    return subject, text


def _deliver(notification: Notification, sms) -> None:
    subject, text = render(notification)
    if notification.channel == Notification.Channel.SMS:
        sms.send(to=notification.customer.phone, text=text,
                 idempotency_key=f"{notification.event_key}:{notification.channel}")
    else:
        send_email(to=notification.customer.email, subject=subject, text=text)


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(attempts - 1, 0)))


def notifications_send_due(*, max_batches: int | None = None) -> int:
    """Send every notice that is due, batch by batch; returns how many went out."""
    sms = sms_backend()
    sent_total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        batch = _claim(settings.NOTIFICATION_BATCH_SIZE)
        if not batch:
            break
        batches += 1
        sent, failed = [], []
        for notification in batch:
            try:
                _deliver(notification, sms)
                sent.append(notification.pk)
            except DeliveryError as error:
                failed.append((notification, str(error)[:1000]))
        now = timezone.now()
        Notification.objects.filter(pk__in=sent).update(
            state=Notification.State.SENT, sent_at=now, attempts=F("attempts") + 1, last_error=""
        )
        for notification, error in failed:
            attempts = notification.attempts + 1
            gave_up = attempts >= settings.NOTIFICATION_MAX_ATTEMPTS
            Notification.objects.filter(pk=notification.pk).update(
                state=Notification.State.FAILED if gave_up else Notification.State.PENDING,
                attempts=attempts,
                last_error=error,
                next_attempt_at=now + _retry_delay(attempts),
            )
        sent_total += len(sent)
    return sent_total
