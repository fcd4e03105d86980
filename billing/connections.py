"""Connection changes: every change of a customer's ``is_active``, carried out on the
router by the network queue, retried until the router confirms it.

One live delivery chain per change: the row says when its next attempt is due
(``next_attempt_at``); a delivery that is not due, or finds the change confirmed or
superseded, does nothing, and the minute sweep resends only a change whose attempt
is long overdue (its message was lost, or its worker killed).

No lock is held across the router call: a short transaction claims the attempt (a
lease on the customer's changes, ``applying_until``) and reads what to apply, the
router is called with no transaction open, and a second short transaction records
the outcome. A customer's newer change waits for the lease of an older one, which
hands over to it when done, so an older change never lands after a newer one; and
each attempt applies the customer's target (``billing.enforcement``) as of its start,
not the value the change was made with.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import User
from billing.enforcement import (
    Observed,
    Target,
    apply_steps,
    observe,
    steps_needed,
    target_of,
)
from billing.models import ConnectionChange, Customer, Router
from billing.routeros import NetworkError, RouterClient, RouterError, router_client
from core.enums import Status
from core.queue import publish, publish_on_commit

APPLY_TASK = "network.connection_change_apply"
# Beyond the attempt's own deadline: the database writes around the router call.
LEASE_MARGIN_SECONDS = 5
# A retry's message may come a little before its time (clocks of other machines).
EARLY_SECONDS = 1


@dataclass(frozen=True)
class Delivery:
    """What one delivery of a change came to."""

    done: bool  # nothing is left to do for this change (confirmed or superseded)
    retry_in: float | None = None  # the chain goes on: its next attempt is due in this
    error: Exception | None = None  # what the router did, when it did not confirm


def connection_change_request(
    *, customer: Customer, enable: bool, reason: str, requested_by: User | None,
    send: bool = True,
) -> ConnectionChange:
    """Record a change of the connection and hand it to the network task after commit
    (``send=False``: the caller makes its first attempt itself). Older unconfirmed
    changes of the customer are superseded by this one."""
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
    if send:
        publish_on_commit(APPLY_TASK, args=[change.pk], task_id=change.task_id)
    return change


def connection_change_retry_later(change: ConnectionChange, delay: float) -> bool:
    """The next link of the change's chain, due in ``delay`` seconds (after a first
    attempt made by its caller)."""
    return publish(APPLY_TASK, args=[change.pk], task_id=change.task_id, countdown=delay)


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    base = settings.NETWORK_RETRY_BASE_SECONDS
    return min(settings.NETWORK_RETRY_MAX_SECONDS, base * 2 ** max(attempts - 1, 0))


def connection_change_attempt(
    *, change_id: int, scheduled: bool, client: RouterClient | None = None,
    run_id: int | None = None, observed: Observed | None = None,
) -> Delivery:
    """Carry a change out on the router once. ``scheduled``: a delivery of the change's
    chain, which runs only when the change is due. A delivery that finds another of the
    customer's changes at the router leaves it to hand over when it is done. ``client``:
    a connection to the customer's router to use (a sync's), else one is opened;
    ``observed``: what a listing of the router just saw, instead of reading it again."""
    claimed = _claim(change_id, scheduled=scheduled)
    if isinstance(claimed, Delivery):
        return claimed
    lease, router, target = claimed
    error = None
    if router is not None and target is not None:
        try:
            _enforce(router, target, change_id=change_id, client=client, run_id=run_id,
                     observed=observed)
        except NetworkError as failure:
            error = failure
    return _finish(change_id, lease=lease, target=target, error=error)


def _enforce(
    router: Router, target: Target, *, change_id: int, client: RouterClient | None,
    run_id: int | None, observed: Observed | None,
) -> None:
    if not router.is_enabled or router.status == Status.REMOVED:
        raise RouterError(f"router {router.name} is switched off in billing")
    own = client is None
    if own:
        client = router_client(router, deadline=settings.NETWORK_ATTEMPT_SECONDS)
    try:
        steps = steps_needed(target, observed or observe(client, target))
        apply_steps(client, router_id=router.pk, target=target, steps=steps,
                    change_id=change_id, run_id=run_id)
    finally:
        if own:
            client.close()


def connection_change_apply_now(*, change_id: int) -> bool:
    """Carry a change out on the router now, due or not. True when confirmed (or
    superseded); False when another change of the customer is at the router (this one
    follows it); raises ``NetworkError`` when the router did not confirm, after
    recording the error and when the next attempt is due."""
    delivery = connection_change_attempt(change_id=change_id, scheduled=False)
    if delivery.error is not None:
        raise delivery.error
    return delivery.done


def _claim(
    change_id: int, *, scheduled: bool
) -> Delivery | tuple[datetime, Router | None, Target | None]:
    """The attempt's lease (its end), the customer's router and what it applies there
    (None: nothing to enforce), or the Delivery when it has nothing to do."""
    with transaction.atomic():
        customer_id = ConnectionChange.objects.values_list("customer_id", flat=True).get(
            pk=change_id
        )
        # Held for this transaction only: the customer's claims and outcomes queue here.
        customer = (
            Customer.objects.select_for_update(of=("self",))
            .select_related("package", "router").get(pk=customer_id)
        )
        change = ConnectionChange.objects.get(pk=change_id)
        if change.confirmed_at or change.superseded:
            return Delivery(done=True)
        now = timezone.now()
        due = change.next_attempt_at
        if scheduled and due is not None and due > now + timedelta(seconds=EARLY_SECONDS):
            return Delivery(done=False)  # a duplicate; the chain's own delivery comes later
        if change.applying_until and change.applying_until > now:
            return Delivery(done=False)  # a duplicate of the attempt at the router now
        held_until = ConnectionChange.objects.filter(
            customer_id=customer_id, applying_until__gt=now
        ).aggregate(until=Max("applying_until"))["until"]
        if held_until is not None:
            # That attempt hands over when done; if its worker dies, the sweep resends.
            change.next_attempt_at = held_until
            change.save(update_fields=["next_attempt_at"])
            return Delivery(done=False)
        lease = settings.NETWORK_ATTEMPT_SECONDS + LEASE_MARGIN_SECONDS
        change.attempts += 1
        change.applying_until = now + timedelta(seconds=lease)
        # Overdue once the lease is over: a worker killed at the router leaves it to the sweep.
        change.next_attempt_at = change.applying_until
        change.save(update_fields=["attempts", "applying_until", "next_attempt_at"])
        return change.applying_until, customer.router, target_of(customer)


def _finish(
    change_id: int, *, lease: datetime, target: Target | None, error: Exception | None
) -> Delivery:
    """Record an attempt's outcome and end its lease; a superseded change hands over to
    the customer's current one, which may have waited for this attempt."""
    with transaction.atomic():
        customer_id = ConnectionChange.objects.values_list("customer_id", flat=True).get(
            pk=change_id
        )
        customer = (
            Customer.objects.select_for_update(of=("self",))
            .select_related("package").get(pk=customer_id)
        )
        change = ConnectionChange.objects.get(pk=change_id)
        if change.applying_until != lease:
            # This attempt outlived its lease and another one took the change over.
            return Delivery(done=False)
        now = timezone.now()
        change.applying_until = None
        fields = ["applying_until"]
        message = str(error)[:1000] if error is not None else ""
        if error is not None:
            change.last_error = message
            fields.append("last_error")
            Customer.objects.filter(pk=customer_id).update(network_last_error=message)
        if change.superseded:
            change.save(update_fields=fields)
            _hand_over(customer_id, now)
            return Delivery(done=True)
        if error is not None:
            delay = retry_delay(change.attempts)
            change.next_attempt_at = now + timedelta(seconds=delay)
            change.save(update_fields=[*fields, "next_attempt_at"])
            return Delivery(done=False, retry_in=delay, error=error)
        if target_of(customer) != target:
            # Changed while at the router without a newer change: apply it again now.
            change.next_attempt_at = now
            change.save(update_fields=[*fields, "next_attempt_at"])
            return Delivery(done=False, retry_in=0)
        change.confirmed_at = now
        change.last_error = ""
        change.next_attempt_at = None
        change.save(update_fields=[*fields, "confirmed_at", "last_error", "next_attempt_at"])
        Customer.objects.filter(pk=customer_id).update(
            network_confirmed_at=now, network_confirmed_active=customer.is_active,
            network_last_error="",
        )
        return Delivery(done=True)


def _hand_over(customer_id: int, now) -> None:
    current = (
        ConnectionChange.objects.filter(
            customer_id=customer_id, confirmed_at__isnull=True, superseded=False
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if current is None or (current.applying_until and current.applying_until > now):
        return
    ConnectionChange.objects.filter(pk=current.pk).update(next_attempt_at=now)
    publish_on_commit(APPLY_TASK, args=[current.pk], task_id=current.task_id)


def connection_changes_resend(*, stale_seconds: int = 60) -> int:
    """Resume the chains that died: send again each unconfirmed change whose next
    attempt is more than ``stale_seconds`` overdue. A live chain is left alone."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds)
    overdue = ConnectionChange.objects.filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff),
        confirmed_at__isnull=True,
        superseded=False,
    )
    sent = 0
    for pk, task_id in list(overdue.values_list("pk", "task_id")):
        # Due now; sent again only once this too is long overdue. Skipped when a
        # delivery claimed it meanwhile.
        if overdue.filter(pk=pk).update(next_attempt_at=now):
            sent += publish(APPLY_TASK, args=[pk], task_id=task_id)
    return sent
