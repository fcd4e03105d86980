"""Reconciliation: every record against its ledger, and overpayments carried forward.

Rules it enforces: a record's ``amount`` is the sum of its (non-voided) ledger
lines; ``paid`` is ``waived or amount >= bill_amount``. A surplus above the bill
moves forward as a CREDIT_OUT line on the overpaid record and a CREDIT_IN line on
the customer's next unpaid record, or into the customer's ``balance`` until there
is one. Every fix is written down on the run.
"""

import uuid
from decimal import Decimal

from django.db import transaction
from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.models import ZERO, Collection, Customer, Payment, ReconciliationRun
from billing.services import customer_reactivate_if_settled, payment_settle
from core.enums import BillingMonth, PaymentMethod
from core.queue import publish_on_commit

MAX_DISCREPANCIES_KEPT = 500


def reconciliation_start(*, trigger: str) -> ReconciliationRun:
    from tasks.reconciliation import reconciliation_execute

    run = ReconciliationRun.objects.create(task_id=str(uuid.uuid4()), trigger=trigger)
    publish_on_commit(reconciliation_execute, args=[run.pk], task_id=run.task_id)
    return run


def _month_key(payment: Payment) -> tuple[int, int]:
    return payment.billing_year, BillingMonth(payment.billing_month).number


def _ledger_mismatches():
    ledger = Coalesce(
        Sum("collections__amount", filter=Q(collections__voided_at__isnull=True)),
        Value(ZERO),
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )
    live = Payment.objects.filter(voided_at__isnull=True)
    wrong_amount = live.annotate(ledger=ledger).exclude(amount=F("ledger")).values_list(
        "pk", flat=True
    )
    wrong_paid = live.filter(
        Q(paid=True, waived=False, amount__lt=F("bill_amount"))
        | Q(paid=False, amount__gte=F("bill_amount"))
        | Q(paid=False, waived=True)
    ).values_list("pk", flat=True)
    return sorted(set(wrong_amount) | set(wrong_paid))


def _credit_line(payment: Payment, kind: str, amount: Decimal, note: str) -> None:
    Collection.objects.create(
        payment=payment, kind=kind, amount=amount, payment_method=PaymentMethod.OTHER,
        payment_date=timezone.now(), note=note,
    )


def _next_unpaid(customer: Customer, after: Payment | None) -> Payment | None:
    candidates = Payment.objects.select_for_update().filter(
        customer=customer, voided_at__isnull=True, paid=False
    )
    ordered = sorted(candidates, key=_month_key)
    if after is not None:
        ordered = [p for p in ordered if _month_key(p) > _month_key(after)]
    return ordered[0] if ordered else None


def _carry_surplus(payment_id: int) -> Decimal:
    """Move one overpaid record's surplus forward; the amount moved."""
    with transaction.atomic():
        payment = Payment.objects.select_related("customer").get(pk=payment_id)
        customer = Customer.objects.select_for_update().get(pk=payment.customer_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        surplus = payment.amount - payment.bill_amount
        if payment.voided_at or surplus <= 0:
            return ZERO
        label = f"{payment.billing_month} {payment.billing_year}"
        _credit_line(payment, Collection.Kind.CREDIT_OUT, -surplus, "Surplus carried forward")
        payment_settle(payment)
        payment.save(update_fields=["amount", "paid", "updated_at"])
        target = _next_unpaid(customer, after=payment)
        if target is None:
            Customer.objects.filter(pk=customer.pk).update(balance=F("balance") + surplus)
        else:
            _credit_line(target, Collection.Kind.CREDIT_IN, surplus, f"Credit from {label}")
            payment_settle(target)
            target.save(update_fields=["amount", "paid", "updated_at"])
            target.customer = customer
            customer_reactivate_if_settled(target, None)
        return surplus


def _apply_balance(customer_id: int) -> Decimal:
    """Spend a customer's credit on their oldest unpaid record; the amount applied."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        target = _next_unpaid(customer, after=None)
        if customer.balance <= 0 or target is None:
            return ZERO
        applied = min(customer.balance, target.bill_amount - target.amount)
        if applied <= 0:
            return ZERO
        _credit_line(target, Collection.Kind.CREDIT_IN, applied, "Credit from balance")
        payment_settle(target)
        target.save(update_fields=["amount", "paid", "updated_at"])
        Customer.objects.filter(pk=customer.pk).update(balance=F("balance") - applied)
        target.customer = customer
        customer_reactivate_if_settled(target, None)
        return applied


def reconciliation_execute(*, run_id: int) -> ReconciliationRun:
    run = ReconciliationRun.objects.get(pk=run_id)
    if run.state in (ReconciliationRun.State.SUCCESS, ReconciliationRun.State.FAILED):
        return run
    ReconciliationRun.objects.filter(pk=run.pk).update(state=ReconciliationRun.State.RUNNING)
    discrepancies = []
    fixed = 0
    for payment_id in _ledger_mismatches():
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            before = {"amount": str(payment.amount), "paid": payment.paid}
            payment_settle(payment)
            payment.save(update_fields=["amount", "paid", "updated_at"])
        fixed += 1
        if len(discrepancies) < MAX_DISCREPANCIES_KEPT:
            discrepancies.append({
                "payment_uid": str(payment.uid), "before": before,
                "after": {"amount": str(payment.amount), "paid": payment.paid},
            })
    moved, moved_amount = 0, ZERO
    overpaid = Payment.objects.filter(voided_at__isnull=True, amount__gt=F("bill_amount"))
    for payment_id in overpaid.values_list("pk", flat=True):
        amount = _carry_surplus(payment_id)
        if amount:
            moved, moved_amount = moved + 1, moved_amount + amount
    with_credit = Customer.objects.filter(
        balance__gt=0, payments__paid=False, payments__voided_at__isnull=True
    ).distinct()
    for customer_id in with_credit.values_list("pk", flat=True):
        amount = _apply_balance(customer_id)
        if amount:
            moved, moved_amount = moved + 1, moved_amount + amount
    ReconciliationRun.objects.filter(pk=run.pk).update(
        state=ReconciliationRun.State.SUCCESS,
        checked_count=Payment.objects.filter(voided_at__isnull=True).count(),
        fixed_count=fixed,
        credits_moved=moved,
        credit_amount=moved_amount,
        discrepancies=discrepancies,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


def reconciliation_result(run: ReconciliationRun) -> dict:
    return {
        "run_uid": str(run.uid),
        "trigger": run.trigger,
        "state": run.state,
        "checked": run.checked_count,
        "fixed": run.fixed_count,
        "credits_moved": run.credits_moved,
        "credit_amount": f"{run.credit_amount:.2f}",
        "discrepancies": run.discrepancies,
        "error": run.error,
    }
