"""Credit moved between a customer's records: an overpaid record's surplus carried to
their next unpaid record (or their ``balance``), a balance spent on a bill, and all of
it undone when the money it came from is voided. Every movement is a pair of ledger
lines (or a line and the balance), linked by ``source``; nothing is rewritten. Locks
follow ``billing.services.LOCK_ORDER``."""

from decimal import Decimal
from operator import attrgetter

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import ZERO, Collection, Customer, Payment
from billing.services import customer_reactivate_if_settled, lock_customer_records, payment_settle
from core.enums import PaymentMethod
from core.errors import NON_FIELD_ERRORS, field_error

Kind = Collection.Kind
CASH_KINDS = (Kind.COLLECTION, Kind.ADJUSTMENT, Kind.REFUND)


def _label(payment: Payment) -> str:
    return f"{payment.billing_month} {payment.billing_year}"


def _credit_line(
    payment: Payment, kind: str, amount: Decimal, note: str, source: Collection | None = None
) -> Collection:
    return Collection.objects.create(
        payment=payment, kind=kind, amount=amount, payment_method=PaymentMethod.OTHER,
        payment_date=timezone.now(), note=note, source=source,
    )


def _resettle(payment: Payment, customer: Customer) -> None:
    payment_settle(payment)
    payment.save(update_fields=["amount", "paid", "updated_at"])
    payment.customer = customer
    customer_reactivate_if_settled(payment, None)


def _balance_add(customer: Customer, amount: Decimal) -> None:
    customer.balance += amount
    customer.save(update_fields=["balance", "updated_at"])  # save(): audited


def _next_unpaid(customer: Customer, after: Payment | None) -> Payment | None:
    candidates = Payment.objects.select_for_update().filter(
        customer=customer, voided_at__isnull=True, paid=False
    )
    ordered = sorted(candidates, key=attrgetter("period"))
    if after is not None:
        ordered = [p for p in ordered if p.period > after.period]
    return ordered[0] if ordered else None


def carry_surplus(payment_id: int) -> Decimal:
    """Move one overpaid record's surplus forward; the amount moved."""
    with transaction.atomic():
        customer_id = Payment.objects.values_list("customer_id", flat=True).get(pk=payment_id)
        customer, found = lock_customer_records(customer_id, [payment_id])
        payment = found[payment_id]
        surplus = payment.amount - payment.bill_amount
        if payment.voided_at or surplus <= 0:
            return ZERO
        out = _credit_line(payment, Kind.CREDIT_OUT, -surplus, "Surplus carried forward")
        _resettle(payment, customer)
        target = _next_unpaid(customer, after=payment)
        if target is None:
            _balance_add(customer, surplus)
        else:
            _credit_line(target, Kind.CREDIT_IN, surplus, f"Credit from {_label(payment)}", out)
            _resettle(target, customer)
        return surplus


def apply_balance(customer_id: int) -> Decimal:
    """Spend a customer's credit on their oldest unpaid record; the amount applied."""
    with transaction.atomic():
        customer, _ = lock_customer_records(customer_id)
        target = _next_unpaid(customer, after=None)
        if customer.balance <= 0 or target is None:
            return ZERO
        applied = min(customer.balance, target.bill_amount - target.amount)
        if applied <= 0:
            return ZERO
        _credit_line(target, Kind.CREDIT_IN, applied, "Credit from balance")
        _balance_add(customer, -applied)
        _resettle(target, customer)
        return applied


# Voiding ---------------------------------------------------------------------


def _live_lines(**filters):
    return Collection.objects.filter(voided_at__isnull=True, **filters)


def _unreversed(line: Collection) -> Decimal:
    """What of a CREDIT_IN no reversal (a CREDIT_OUT with it as source) took back yet."""
    taken = _live_lines(source=line, kind=Kind.CREDIT_OUT).aggregate(total=Sum("amount"))
    return line.amount + (taken["total"] or ZERO)


def _take_back(line: Collection, amount: Decimal, why: str) -> None:
    """Reverse ``amount`` of a CREDIT_IN on a live record, which must still hold it."""
    payment = line.payment
    if payment.amount < amount:
        raise field_error(
            NON_FIELD_ERRORS,
            f"{amount} of credit went to {_label(payment)}, which now holds only "
            f"{payment.amount}: correct that record first.",
        )
    _credit_line(payment, Kind.CREDIT_OUT, -amount, why, line)
    payment.amount -= amount  # settled for good once the unwind is done


def credit_unwind(payment: Payment) -> None:
    """Undo every credit movement of a record about to be voided, under the locks of
    ``LOCK_ORDER`` (its customer is locked by the caller): the surplus it carried out
    comes back from the record it went to, or from the balance (or, once the balance
    was spent, from the bills it paid); the credit it received goes back where it came
    from. Refused (400) when a record that received its credit no longer holds it."""
    customer = payment.customer
    touched: dict[int, Payment] = {}
    why = f"{_label(payment)} voided"

    def lock(record: Payment) -> Payment:
        if record.pk not in touched:
            touched.update(lock_customer_records(customer.pk, [record.pk])[1])
        return touched[record.pk]

    for out in _live_lines(payment=payment, kind=Kind.CREDIT_OUT, source__isnull=True):
        carried = out.derived.filter(kind=Kind.CREDIT_IN).exclude(payment=payment)
        if carried.exists():
            for line in carried.filter(voided_at__isnull=True, payment__voided_at__isnull=True):
                line.payment = lock(line.payment)
                amount = _unreversed(line)
                if amount > 0:
                    _take_back(line, amount, why)
            continue
        # It went to the balance: take it from there, then from what the balance paid.
        owed = abs(out.amount)
        from_balance = min(owed, customer.balance)
        if from_balance:
            _balance_add(customer, -from_balance)
            owed -= from_balance
        spent = _live_lines(
            kind=Kind.CREDIT_IN, source__isnull=True, payment__customer=customer,
            payment__voided_at__isnull=True,
        ).exclude(payment=payment).order_by("-created_at", "-pk")
        for line in spent:
            if not owed:
                break
            line.payment = lock(line.payment)
            amount = min(owed, _unreversed(line), line.payment.amount)
            if amount > 0:
                _take_back(line, amount, why)
                owed -= amount
        if owed:
            raise field_error(
                NON_FIELD_ERRORS,
                f"{owed} of the credit this record carried forward has been spent and "
                "corrected away: correct those records first.",
            )
    for received in _live_lines(payment=payment, kind=Kind.CREDIT_IN):
        source = received.source
        if source is not None and source.payment_id == payment.pk:
            continue  # its own surplus given back: it goes with the record
        amount = _unreversed(received)
        if amount <= 0:
            continue
        if source is None:
            _balance_add(customer, amount)
        else:
            _credit_line(lock(source.payment), Kind.CREDIT_IN, amount, f"Given back: {why}", source)
    for record in touched.values():
        _resettle(record, customer)


def ledger_invariant_errors(customer_id: int) -> list[str]:
    """What is wrong with one customer's money; empty when it is right.

    The invariant: money in (the live cash lines of live records) = what the live
    records hold + the customer's balance. Credit only moves money between them; a
    voided record takes its money, and everything derived from it, out of all three.
    Besides: each record's ``amount`` is its live lines' sum, ``paid`` follows the
    rule, a voided record has no live line, the balance is never negative.
    """
    customer = Customer.objects.get(pk=customer_id)
    errors = []
    cash = held = ZERO
    for payment in Payment.objects.filter(customer_id=customer_id).order_by("pk"):
        live = [line for line in payment.collections.all() if line.voided_at is None]
        label = f"{payment.billing_month} {payment.billing_year} (#{payment.pk})"
        if payment.voided_at is not None:
            if live:
                errors.append(f"voided {label} has {len(live)} live line(s)")
            continue
        total = sum((line.amount for line in live), ZERO)
        if payment.amount != total:
            errors.append(f"{label}: amount {payment.amount} != its lines {total}")
        if payment.paid != (payment.waived or payment.amount >= payment.bill_amount):
            errors.append(f"{label}: paid={payment.paid} breaks the rule")
        held += payment.amount
        cash += sum((line.amount for line in live if line.kind in CASH_KINDS), ZERO)
    if customer.balance < 0:
        errors.append(f"balance {customer.balance} is negative")
    if cash != held + customer.balance:
        errors.append(f"money in {cash} != held {held} + balance {customer.balance}")
    return errors
