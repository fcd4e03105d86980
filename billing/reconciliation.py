"""Reconciliation: every record against its ledger, and overpayments carried forward.

Rules it enforces: a record's ``amount`` is the sum of its (non-voided) ledger
lines; ``paid`` is ``waived or amount >= bill_amount``. A surplus above the bill
moves forward as a CREDIT_OUT line on the overpaid record and a CREDIT_IN line on
the customer's next unpaid record, or into the customer's ``balance`` until there
is one. Every fix is written down on the run.
"""

import uuid

from django.db import transaction
from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.ledger import apply_balance, carry_surplus
from billing.models import ZERO, Customer, Payment, ReconciliationRun
from billing.services import payment_settle
from core.queue import publish_on_commit

MAX_DISCREPANCIES_KEPT = 500


def reconciliation_start(*, trigger: str) -> ReconciliationRun:
    run = ReconciliationRun.objects.create(task_id=str(uuid.uuid4()), trigger=trigger)
    publish_on_commit("bills.reconciliation_execute", args=[run.pk], task_id=run.task_id)
    return run


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
        amount = carry_surplus(payment_id)
        if amount:
            moved, moved_amount = moved + 1, moved_amount + amount
    with_credit = Customer.objects.filter(
        balance__gt=0, payments__paid=False, payments__voided_at__isnull=True
    ).distinct()
    for customer_id in with_credit.values_list("pk", flat=True):
        amount = apply_balance(customer_id)
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
