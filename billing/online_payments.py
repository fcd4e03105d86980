"""Customers paying their own bills through a provider (bKash, Nagad, SSLCommerz).

An online payment opens a checkout at the provider, sends the customer there, and is
settled only on the provider's own server-to-server word (an execute, a status query or
a signed webhook): a callback or redirect says which question to ask, never the answer.
However often and in whatever order those answers come, the money lands once: the state
machine below moves under the payment's row lock, and the database makes a provider's
payment id, its transaction id, and a payment's line on a record count once.

Locks follow ``billing.services.LOCK_ORDER``: the customer first (which every money
write for them takes, so nothing else can interleave), then the online payment's row,
then the records it lands on. No lock is held across a call to a provider.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal
from operator import attrgetter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing.models import (
    PERIOD_ORDER,
    ZERO,
    Collection,
    Customer,
    Notification,
    OnlinePayment,
    OnlinePaymentEvent,
    Payment,
)
from billing.notifications import notify
from billing.pay_links import pay_link
from billing.providers import (
    Outcome,
    ProviderError,
    ProviderUnavailable,
    Refund,
    Status,
    provider_for,
)
from billing.services import (
    amount_due,
    customer_reactivate_if_settled,
    lock_customer_records,
    payment_settle,
)
from core.enums import OnlineProvider, OnlineState, PaymentMethod
from core.errors import NON_FIELD_ERRORS, field_error
from core.queue import publish
from core.timeutils import business_month

logger = logging.getLogger(__name__)

State = OnlineState
OPEN = (State.CREATED, State.REDIRECTED)
# Where each state may go. A payment that ended unpaid may still succeed: the provider's
# later word that it holds the money (a late webhook, the sweep's query) is the truth.
MAY_BECOME = {
    State.CREATED: {State.REDIRECTED, State.SUCCEEDED, State.FAILED, State.CANCELLED,
                    State.EXPIRED},
    State.REDIRECTED: {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.EXPIRED},
    State.FAILED: {State.SUCCEEDED},
    # FAILED too: completed at the provider, but not as asked (amount, invoice).
    State.CANCELLED: {State.SUCCEEDED, State.FAILED},
    State.EXPIRED: {State.SUCCEEDED, State.FAILED},
    State.SUCCEEDED: {State.REFUNDED},
    State.REFUNDED: set(),
}
ENDED_BY = {Status.FAILED: State.FAILED, Status.CANCELLED: State.CANCELLED}
# The payment_method of the ledger lines each provider's money makes.
LEDGER_METHOD = {
    OnlineProvider.BKASH: PaymentMethod.BKASH,
    OnlineProvider.NAGAD: PaymentMethod.NAGAD,
    OnlineProvider.SSLCOMMERZ: PaymentMethod.ONLINE_PAYMENT,
}
# The field of each provider's redirect that names the payment, and what it must equal:
# a redirect naming another payment asks nothing of the provider.
CALLBACK_NAMES = {
    OnlineProvider.BKASH: ("paymentID", "provider_payment_id"),
    OnlineProvider.NAGAD: ("payment_ref_id", "provider_payment_id"),
    OnlineProvider.SSLCOMMERZ: ("tran_id", "invoice_number"),
}
CHECK_TASK = "payments.online_payment_check"
ENDED_UNPAID = (State.FAILED, State.CANCELLED, State.EXPIRED)
# How long, and how often, a payment that ended unpaid is asked about again: a provider
# without a webhook (Nagad) has no other way to tell us a late success.
RECHECK_WINDOW = timedelta(hours=24)
RECHECK_EVERY = timedelta(minutes=15)
SWEEP_BATCH = 500


class ProviderDown(Exception):
    """The provider did not answer; the caller says so (503) and nothing was decided."""


# Bills ----------------------------------------------------------------------------


def open_bills(customer: Customer) -> list[Payment]:
    """The customer's live unpaid records, oldest month first."""
    return list(Payment.objects.filter(customer=customer, voided_at__isnull=True, paid=False)
                .order_by(*PERIOD_ORDER))


# Starting a payment ---------------------------------------------------------------


def online_payment_start(
    *, customer: Customer, provider: str, payment_uids: list | None = None,
) -> OnlinePayment:
    """Open a checkout for the customer's open bills (or the given ones) at ``provider``;
    the payment comes back REDIRECTED with the provider's ``redirect_url``. The provider
    sends the customer back to their pay page, whether they started there or in the app."""
    gateway = provider_for(provider)
    if gateway is None:
        raise field_error("provider", f"{provider} is not available.")
    if customer.is_free:
        raise field_error(NON_FIELD_ERRORS, "This customer is free and takes no payments.")
    bills = open_bills(customer)
    if payment_uids is not None:
        wanted = {str(uid) for uid in payment_uids}
        if not wanted:
            raise field_error("payment_uids", "Choose at least one bill.")
        bills = [bill for bill in bills if str(bill.uid) in wanted]
        if len(bills) != len(wanted):
            raise field_error("payment_uids", "Only your own unpaid bills can be paid.")
    amount = sum((amount_due(bill) for bill in bills), ZERO)
    if amount <= 0:
        raise field_error(NON_FIELD_ERRORS, "Nothing is owed.")
    with transaction.atomic():
        online = OnlinePayment.objects.create(
            customer=customer, provider=provider, amount=amount,
            invoice_number=uuid.uuid4().hex[:20].upper(),
            expires_at=timezone.now() + timedelta(minutes=settings.ONLINE_PAYMENT_EXPIRE_MINUTES),
        )
        online.payments.set(bills)
    back = f"{pay_link(customer)}/return"
    try:
        checkout = gateway.create(
            amount=amount, currency=online.currency, invoice_number=online.invoice_number,
            payer_reference=online.invoice_number, payer_name=customer.name,
            payer_phone=customer.phone, callback_url=f"{back}/{online.uid}",
        )
    except ProviderUnavailable as error:
        _move(online.pk, State.FAILED, "CREATE", error.answer, error=str(error))
        raise ProviderDown(str(error)) from None
    except ProviderError as error:
        _move(online.pk, State.FAILED, "CREATE", error.answer, error=str(error))
        raise field_error("provider", f"{provider} refused the payment: {error}") from None
    _move(online.pk, State.REDIRECTED, "CREATE", checkout.answer,
          provider_payment_id=checkout.provider_payment_id, redirect_url=checkout.redirect_url)
    online.refresh_from_db()
    return online


# Provider answers -----------------------------------------------------------------


def online_payment_returned(*, online_payment: OnlinePayment, callback: dict) -> OnlinePayment:
    """The customer came back from the provider (its redirect, with whatever fields it
    carries): ask the provider, server to server, how the payment ended."""
    if online_payment.state in (State.SUCCEEDED, State.REFUNDED) \
            or not online_payment.provider_payment_id:
        return online_payment
    name, attribute = CALLBACK_NAMES[online_payment.provider]
    if callback.get(name) not in (None, getattr(online_payment, attribute)):
        raise field_error(name, "This callback is not for this payment.")
    gateway = provider_for(online_payment.provider)
    if gateway is None:
        raise ProviderDown(f"{online_payment.provider} is switched off")
    try:
        outcome = gateway.confirm(provider_payment_id=online_payment.provider_payment_id,
                                  callback=callback)
    except ProviderUnavailable as error:
        raise ProviderDown(str(error)) from None
    except ProviderError as error:
        _record(online_payment.pk, "CONFIRM", error.answer, error=str(error))
        return _fresh(online_payment)
    online_payment_apply(online_payment.pk, outcome, "CONFIRM")
    return _fresh(online_payment)


def online_payment_check(*, online_payment_id: int) -> OnlinePayment | None:
    """Ask the provider about a payment (the sweep: no callback came, or execute gave no
    answer); expire an open one when its time is up and the provider has nothing. One
    that ended unpaid changes only on the provider's word that it holds the money (a
    customer who paid after a failed, cancelled or expired try, and never came back)."""
    online = OnlinePayment.objects.filter(pk=online_payment_id).first()
    if online is None or online.state not in (*OPEN, *ENDED_UNPAID):
        return online
    gateway = provider_for(online.provider)
    outcome = None
    if gateway is not None and online.provider_payment_id:
        try:
            outcome = gateway.query(provider_payment_id=online.provider_payment_id)
        except ProviderUnavailable:
            return online  # asked again by the next sweep
        except ProviderError as error:
            # A refusal (a 4xx, a wrong credential) says nothing about the money: the
            # payment stays as it is, asked again, until its recheck window is over.
            _record(online.pk, "QUERY", error.answer, error=str(error))
            if online.state in OPEN and online.expires_at + RECHECK_WINDOW <= timezone.now():
                _move(online.pk, State.EXPIRED, "EXPIRE", error.answer)
            return _fresh(online)
    if online.state in ENDED_UNPAID:
        if outcome is not None and outcome.status == Status.COMPLETED:
            online_payment_apply(online.pk, outcome, "QUERY")
        else:
            _touch(online.pk)
    elif outcome is not None and outcome.status != Status.PENDING:
        online_payment_apply(online.pk, outcome, "QUERY")
    elif online.expires_at <= timezone.now():
        _move(online.pk, State.EXPIRED, "EXPIRE", outcome.answer if outcome else {})
    else:
        _touch(online.pk)
    return _fresh(online)


def _touch(online_payment_id: int) -> None:
    """Asked, nothing new: the sweeps count quiet time from now."""
    OnlinePayment.objects.filter(pk=online_payment_id).update(updated_at=timezone.now())


def online_payment_notice(*, provider: str, body: bytes) -> OnlinePayment | None:
    """A provider's webhook: verified, then applied as its answer. Raises ``ProviderError``
    when it is not genuine; None when it names no payment of ours (or asks nothing)."""
    gateway = provider_for(provider)
    if gateway is None:
        raise ProviderError(f"{provider} is switched off")
    try:
        notice = gateway.notice(body)
    except ProviderUnavailable as error:
        raise ProviderDown(str(error)) from None
    if notice.outcome is None:
        return None
    online = None
    if notice.invoice_number:
        online = OnlinePayment.objects.filter(provider=provider,
                                              invoice_number=notice.invoice_number).first()
    if online is None and notice.provider_payment_id:
        online = OnlinePayment.objects.filter(
            provider=provider, provider_payment_id=notice.provider_payment_id).first()
    if online is None:
        logger.warning("%s webhook for an unknown payment (invoice %r)", provider,
                       notice.invoice_number)
        return None
    if notice.outcome.status != Status.PENDING:
        online_payment_apply(online.pk, notice.outcome, "WEBHOOK")
    return _fresh(online)


def online_payment_apply(online_payment_id: int, outcome: Outcome, kind: str) -> None:
    """Apply what the provider said. COMPLETED with our amount, currency and invoice:
    settled (once); COMPLETED with anything else: FAILED and not credited, for a person;
    FAILED or CANCELLED: so, unless it is paid already."""
    if outcome.status == Status.COMPLETED:
        online = OnlinePayment.objects.get(pk=online_payment_id)
        mismatch = _mismatch(online, outcome)
        if mismatch:
            _move(online_payment_id, State.FAILED, kind, outcome.answer, error=mismatch)
            return
        _settle(online_payment_id, outcome, kind)
    elif outcome.status in ENDED_BY:
        _move(online_payment_id, ENDED_BY[outcome.status], kind, outcome.answer)
    else:
        _record(online_payment_id, kind, outcome.answer)


def _mismatch(online: OnlinePayment, outcome: Outcome) -> str:
    problems = []
    if outcome.amount != online.amount:
        problems.append(f"amount {outcome.amount} (asked {online.amount})")
    if outcome.currency and outcome.currency != online.currency:
        problems.append(f"currency {outcome.currency} (asked {online.currency})")
    if outcome.invoice_number != online.invoice_number:  # none is no better than another
        problems.append(f"invoice {outcome.invoice_number or 'none'} "
                        f"(asked {online.invoice_number})")
    if outcome.hold:
        problems.append(outcome.hold)
    if not problems:
        return ""
    return ("The provider reports " + ", ".join(problems) + f" for transaction "
            f"{outcome.transaction_id}: not credited; check it with the provider.")


def _landing(customer: Customer, online: OnlinePayment) -> list[Payment]:
    """The records the money lands on, locked: the live ones it was opened for, oldest
    first; with none left live, the customer's oldest open record, else this month's."""
    ids = list(online.payments.values_list("pk", flat=True))
    _, found = lock_customer_records(customer.pk, ids)
    live = sorted((p for p in found.values() if p.voided_at is None), key=attrgetter("period"))
    if live:
        return live
    fallback = open_bills(customer)
    if fallback:
        _, found = lock_customer_records(customer.pk, [fallback[0].pk])
        return list(found.values())
    year, month = business_month()
    record, _ = Payment.objects.get_or_create(
        customer=customer, billing_year=year, billing_month=month, voided_at__isnull=True,
        defaults={"bill_amount": customer.package.price})
    _, found = lock_customer_records(customer.pk, [record.pk])
    return list(found.values())


def _settle(online_payment_id: int, outcome: Outcome, kind: str) -> None:
    """The money on the bills, in one transaction: a line per record (the oldest first,
    each up to what it owes, the rest on the last: credit, as staff payments make it),
    records settled by the rule, the customer switched on when a record became paid,
    the payment-received notice written, then SUCCEEDED."""
    customer_id = OnlinePayment.objects.values_list("customer_id", flat=True) \
        .get(pk=online_payment_id)
    try:
        with transaction.atomic():
            customer, _ = lock_customer_records(customer_id)
            online = OnlinePayment.objects.select_for_update().get(pk=online_payment_id)
            if online.state in (State.SUCCEEDED, State.REFUNDED):
                return
            records = _landing(customer, online)
            left = online.amount
            method = LEDGER_METHOD[online.provider]
            now = timezone.now()
            for index, record in enumerate(records):
                last = index == len(records) - 1
                share = left if last else min(left, amount_due(record))
                if share <= 0:
                    continue
                Collection.objects.create(
                    payment=record, amount=share, payment_method=method,
                    transaction_id=outcome.transaction_id, payment_date=now,
                    note=f"Paid online ({online.provider}, invoice {online.invoice_number})",
                    online_payment=online,
                )
                left -= share
                record.payment_method = method
                record.transaction_id = outcome.transaction_id
                record.payment_date = now
                payment_settle(record)
                record.save()
                record.customer = customer
                customer_reactivate_if_settled(record, None)
            notify(customer=customer, event=Notification.Event.PAYMENT_RECEIVED,
                   key=f"online:{online.pk}", payment=records[0])
            _transition(online, State.SUCCEEDED, kind, outcome.answer,
                        transaction_id=outcome.transaction_id, succeeded_at=now, error="")
    except IntegrityError as error:
        # The transaction id is another payment's already: never credited twice.
        _move(online_payment_id, State.FAILED, kind, outcome.answer,
              error=f"Transaction {outcome.transaction_id} is recorded already: {error}"[:500])


# State ----------------------------------------------------------------------------


def _transition(online: OnlinePayment, state: str, kind: str, answer: dict,
                **fields) -> bool:
    """Move the locked ``online`` to ``state`` (when the machine allows it; staying in
    its state always is), with ``fields``; the answer is kept either way."""
    before = online.state
    moved = state == before or state in MAY_BECOME[before]
    if moved:
        online.state = state
        for name, value in fields.items():
            setattr(online, name, value)
        online.save()
    OnlinePaymentEvent.objects.create(online_payment=online, kind=kind, state_before=before,
                                      state_after=online.state, data=answer or {})
    return moved


def _move(online_payment_id: int, state: str, kind: str, answer: dict, **fields) -> bool:
    """``_transition`` under the payment's own lock (no money moves)."""
    with transaction.atomic():
        online = OnlinePayment.objects.select_for_update().get(pk=online_payment_id)
        return _transition(online, state, kind, answer, **fields)


def _record(online_payment_id: int, kind: str, answer: dict, *, error: str = "") -> None:
    with transaction.atomic():
        online = OnlinePayment.objects.select_for_update().get(pk=online_payment_id)
        data = dict(answer or {})
        if error:
            data["error"] = error
        OnlinePaymentEvent.objects.create(online_payment=online, kind=kind,
                                          state_before=online.state, state_after=online.state,
                                          data=data)


def _fresh(online: OnlinePayment) -> OnlinePayment:
    return OnlinePayment.objects.select_related("customer").get(pk=online.pk)


# The sweep ------------------------------------------------------------------------


def online_payments_sweep() -> int:
    """Hand to a check task every open payment with no news for
    ``ONLINE_PAYMENT_STALE_SECONDS`` (or past its time), and every payment that ended
    unpaid within ``RECHECK_WINDOW`` (none held for a person), once every
    ``RECHECK_EVERY``; the number handed over."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.ONLINE_PAYMENT_STALE_SECONDS)
    open_ids = list(
        OnlinePayment.objects.filter(state__in=OPEN, updated_at__lt=stale)
        .order_by("updated_at", "id").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    # error="": not those held for a person (a wrong amount, a risky payment).
    ended_ids = list(
        OnlinePayment.objects.filter(
            state__in=ENDED_UNPAID, updated_at__lt=now - RECHECK_EVERY, error="",
            created_at__gte=now - RECHECK_WINDOW,
        ).exclude(provider_payment_id="")
        .order_by("updated_at", "id").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    ids = open_ids + ended_ids
    for online_id in ids:
        publish(CHECK_TASK, args=[online_id])
    return len(ids)


# Refunds --------------------------------------------------------------------------


def online_payment_refund(*, online_payment: OnlinePayment, amount: Decimal | None,
                          actor: User) -> OnlinePayment:
    """Give money back through the provider: reserved on the payment first (so two staff
    cannot refund it twice), then asked of the provider, then written as negative lines
    on the records it paid, the newest first. A provider that gives no answer leaves the
    refund reserved and unanswered, and no other refund is taken, until a person checks
    it (``online_payment_refund_settle``)."""
    gateway = provider_for(online_payment.provider)
    if gateway is None:
        raise field_error(NON_FIELD_ERRORS, f"{online_payment.provider} is switched off.")
    with transaction.atomic():
        online = OnlinePayment.objects.select_for_update().get(pk=online_payment.pk)
        if online.state != State.SUCCEEDED:
            raise field_error(NON_FIELD_ERRORS, f"A {online.state} payment cannot be refunded.")
        if online.refund_unanswered:
            raise field_error(NON_FIELD_ERRORS, (
                f"A refund of {online.refund_unanswered} got no answer from the provider: "
                f"check it there and settle it first."))
        left = online.amount - online.refunded_amount
        amount = left if amount is None else amount
        if amount <= 0 or amount > left:
            raise field_error("amount", f"Refund between 0.01 and {left}.")
        online.refunded_amount += amount
        _transition(online, online.state, "REFUND_ASKED", {"amount": f"{amount:.2f}",
                                                           "by": actor.pk})
    try:
        refund = gateway.refund(provider_payment_id=online.provider_payment_id,
                                transaction_id=online.transaction_id, amount=amount,
                                invoice_number=online.invoice_number,
                                reason=f"Refund by {actor.get_full_name() or actor.phone}")
    except ProviderUnavailable as error:
        # It may have been made: asking again could refund twice. Held for a person.
        with transaction.atomic():
            online = OnlinePayment.objects.select_for_update().get(pk=online.pk)
            online.refund_unanswered = amount
            _transition(online, online.state, "REFUND_UNANSWERED", error.answer,
                        error=f"A refund of {amount} got no answer ({error}): check it with "
                              f"the provider, then settle it here.")
        raise ProviderDown(str(error)) from None
    except ProviderError as error:
        with transaction.atomic():
            online = OnlinePayment.objects.select_for_update().get(pk=online.pk)
            online.refunded_amount -= amount
            _transition(online, online.state, "REFUND_FAILED", error.answer, error=str(error))
        raise field_error(NON_FIELD_ERRORS, f"The provider refused the refund: {error}") \
            from None
    _refund_lines(online.pk, refund, actor)
    return _fresh(online)


def online_payment_refund_settle(*, online_payment: OnlinePayment, made: bool,
                                 actor: User) -> OnlinePayment:
    """A person checked an unanswered refund with the provider: ``made`` writes its lines
    (under the provider's reference, or a placeholder naming this payment), otherwise the
    reservation is given back."""
    with transaction.atomic():
        online = OnlinePayment.objects.select_for_update().get(pk=online_payment.pk)
        pending = online.refund_unanswered
        if not pending:
            raise field_error(NON_FIELD_ERRORS, "No refund of this payment awaits an answer.")
        online.refund_unanswered = ZERO
        if not made:
            online.refunded_amount -= pending
        _transition(online, online.state, "REFUND_SETTLED",
                    {"amount": f"{pending:.2f}", "made": made, "by": actor.pk}, error="")
    if made:
        _refund_lines(online.pk, Refund(f"CHECKED-{online.invoice_number}", pending, {}), actor)
    return _fresh(online)


def _refund_lines(online_payment_id: int, refund, actor: User) -> None:
    customer_id = OnlinePayment.objects.values_list("customer_id", flat=True) \
        .get(pk=online_payment_id)
    with transaction.atomic():
        ids = list(Collection.objects.filter(online_payment_id=online_payment_id,
                                             kind=Collection.Kind.COLLECTION)
                   .values_list("payment_id", flat=True))
        _, found = lock_customer_records(customer_id, ids)
        online = OnlinePayment.objects.select_for_update().get(pk=online_payment_id)
        left = refund.amount
        now = timezone.now()
        for record in sorted(found.values(), key=attrgetter("period"), reverse=True):
            share = min(left, record.amount) if record.voided_at is None else ZERO
            if share <= 0:
                continue
            Collection.objects.create(
                payment=record, kind=Collection.Kind.REFUND, amount=-share,
                payment_method=record.payment_method, transaction_id=refund.transaction_id,
                payment_date=now, note=f"Refund of {online.transaction_id}",
                recorded_by=actor, online_payment=online,
            )
            left -= share
            payment_settle(record)
            record.save()
        error = "" if left == 0 else f"{left} of the refund is not on any live record."
        state = State.REFUNDED if online.refunded_amount == online.amount else online.state
        _transition(online, state, "REFUND", refund.answer, error=error)
