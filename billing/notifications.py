"""The notification outbox: notices are written in the transaction of the event they
report, and dispatchers send them later, each (event, channel) at most once.

A dispatch task sends one short batch: it claims due rows (SENDING, ``SKIP LOCKED``, so
any number of dispatchers run at once without sharing a row), sends them one by one for
at most ``NOTIFICATION_BATCH_SECONDS``, marks each SENT in its own transaction as soon as
its send returns, gives back what it did not reach, and asks for the next batch. A claim
left by a worker that died is taken again after ``NOTIFICATION_CLAIM_TIMEOUT_SECONDS``
(longer than a batch can take), so at most the notice in flight when a process died (or
whose mark a database outage lost) goes out twice: once only, where the receiver honours
its key.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from billing.messaging import DeliveryError, PermanentDeliveryError, send_email, sms_backend
from billing.models import ZERO, Customer, Notification, Payment
from billing.pay_links import pay_link
from billing.providers import enabled_providers
from core.cache import CACHE_ERRORS, cache_delete
from core.queue import publish, queue_for

logger = logging.getLogger(__name__)

DISPATCH_TASK = "notifications.dispatch"


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


def _queued_key() -> str:
    return f"notifications:dispatch-queued:{queue_for(DISPATCH_TASK)}"


def _publish_dispatch() -> None:
    """Publish a dispatch unless one already waits in the queue (a cache key says so, for
    at most ``NOTIFICATION_DISPATCH_QUEUED_SECONDS``), so a bill run's chunks and a burst
    of payments queue one message, not one each."""
    key = _queued_key()
    try:
        if not cache.add(key, True, timeout=settings.NOTIFICATION_DISPATCH_QUEUED_SECONDS):
            return
    except CACHE_ERRORS:  # the cache is down (the broker's Redis too): publishing decides
        logger.warning("dispatch marker not set", exc_info=True)
    if not publish(DISPATCH_TASK):
        cache_delete(key)


def notifications_dispatch_soon() -> None:
    """Ask for a dispatch once the current transaction commits."""
    transaction.on_commit(_publish_dispatch)


def _claim_timeout() -> timedelta:
    return timedelta(seconds=settings.NOTIFICATION_CLAIM_TIMEOUT_SECONDS)


def _due(now) -> Q:
    return Q(state=Notification.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Notification.State.SENDING, claimed_at__lt=now - _claim_timeout()
    )


def _claim(batch_size: int, now) -> list[Notification]:
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
        ).order_by("next_attempt_at", "pk")
    )


def render(notification: Notification) -> tuple[str, str]:
    payment = notification.payment
    due = max(payment.bill_amount - payment.amount, ZERO) if payment else ZERO
    context = {"customer": notification.customer, "payment": payment, "due": due,
               "event": notification.event,
               "pay_url": pay_link(notification.customer) if enabled_providers() else ""}
    text = render_to_string(f"notifications/{notification.event}.txt", context).strip()
    subject = render_to_string("notifications/subject.txt", context).strip()
    return subject, text


def notice_key(notification: Notification) -> str:
    """What identifies the notice to its receiver, the same on every retry."""
    return f"{notification.event_key}:{notification.channel}"


def _deliver(notification: Notification, sms) -> None:
    subject, text = render(notification)
    if notification.channel == Notification.Channel.SMS:
        sms.send(to=notification.customer.phone, text=text,
                 idempotency_key=notice_key(notification))
    else:
        send_email(to=notification.customer.email, subject=subject, text=text,
                   key=notice_key(notification))


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(attempts - 1, 0)))


def _mark_sent(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        state=Notification.State.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1,
        last_error="",
    )


def _mark_failed(notification: Notification, error: DeliveryError) -> None:
    attempts = notification.attempts + 1
    gave_up = (isinstance(error, PermanentDeliveryError)
               or attempts >= settings.NOTIFICATION_MAX_ATTEMPTS)
    Notification.objects.filter(pk=notification.pk).update(
        state=Notification.State.FAILED if gave_up else Notification.State.PENDING,
        attempts=attempts,
        last_error=str(error)[:1000],
        next_attempt_at=timezone.now() + _retry_delay(attempts),
    )


def notifications_send_batch() -> tuple[int, bool]:
    """Send one batch: at most ``NOTIFICATION_BATCH_SIZE`` notices, none started after
    ``NOTIFICATION_BATCH_SECONDS``. Returns how many went out and whether more are due."""
    now = timezone.now()
    batch = _claim(settings.NOTIFICATION_BATCH_SIZE, now)
    if not batch:
        return 0, False
    sms = sms_backend()
    deadline = time.monotonic() + settings.NOTIFICATION_BATCH_SECONDS
    sent = 0
    for index, notification in enumerate(batch):
        if time.monotonic() >= deadline:
            # Given back untouched, unless a dispatcher has taken the claim over since.
            Notification.objects.filter(
                pk__in=[n.pk for n in batch[index:]], state=Notification.State.SENDING,
                claimed_at=now,
            ).update(state=Notification.State.PENDING, claimed_at=None)
            return sent, True
        try:
            _deliver(notification, sms)
        except DeliveryError as error:
            _mark_failed(notification, error)
        else:
            _mark_sent(notification)
            sent += 1
    return sent, Notification.objects.filter(_due(timezone.now())).exists()


def notifications_dispatch(*, in_process: bool = False) -> int:
    """The dispatch task's work: one batch, then the next batch as a task of its own
    (``in_process``, without a broker: every batch here, as a task re-enqueuing itself
    in-process would recurse). How many went out."""
    cache_delete(_queued_key())  # this message left the queue: a trigger may queue the next one
    if in_process:
        return notifications_send_due()
    sent, more = notifications_send_batch()
    if more:
        _publish_dispatch()
    return sent


def notifications_send_due() -> int:
    """Send every notice that is due, batch after batch, in this process (tasks run
    in-process without a broker); returns how many went out."""
    total, more = 0, True
    while more:
        sent, more = notifications_send_batch()
        total += sent
    return total
