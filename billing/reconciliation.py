"""Reconciliation: every record against its ledger, and overpayments carried forward.

Rules it enforces: a record's ``amount`` is the sum of its (non-voided) ledger
lines; ``paid`` is ``waived or amount >= bill_amount``. A surplus above the bill
moves forward as a CREDIT_OUT line on the overpaid record and a CREDIT_IN line on
the customer's next unpaid record, or into the customer's ``balance`` until there
is one. Every fix is written down on the run.

A run is planned as chunks of payment ids (records made after the plan wait for the
next run); each chunk is a short task that fixes, carries and spends credit for its
records, then adds its figures to the run once, in the transaction that marks it done.
Every fix locks its record and checks it again, so a chunk received twice changes
nothing the second time. The last chunk closes the run. A step that fails for good
ends the run FAILED with its error; a run with no progress for ``RUN_STALE_SECONDS``
is handed over again by its sweep.
"""

import uuid
from decimal import Decimal
from math import ceil

from django.conf import settings
from django.db import transaction
from django.db.models import DecimalField, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing.ledger import apply_balance, carry_surplus
from billing.models import ZERO, Payment, ReconciliationChunk, ReconciliationRun
from billing.services import lock_customer_records, payment_settle
from core.queue import publish, publish_on_commit

MAX_DISCREPANCIES_KEPT = 500
FINISHED = (ReconciliationRun.State.SUCCESS, ReconciliationRun.State.FAILED)


def reconciliation_start(*, trigger: str) -> ReconciliationRun:
    run = ReconciliationRun.objects.create(task_id=str(uuid.uuid4()), trigger=trigger)
    publish_on_commit("bills.reconciliation_execute", args=[run.pk], task_id=run.task_id)
    return run


def reconciliation_plan(*, run_id: int) -> None:
    """Split the run into chunks of payment ids (once) and dispatch the ones not done."""
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run_id)
        if run.state in FINISHED:
            return
        if run.state == ReconciliationRun.State.PENDING:
            bounds = Payment.objects.aggregate(first=Min("pk"), last=Max("pk"))
            size = settings.RECONCILIATION_CHUNK_SIZE
            chunks = []
            if bounds["first"] is not None:
                first, last = bounds["first"], bounds["last"]
                chunks = [
                    ReconciliationChunk(
                        run=run, number=n, first_payment_id=first + n * size,
                        last_payment_id=min(first + (n + 1) * size - 1, last),
                    )
                    for n in range(ceil((last - first + 1) / size))
                ]
            ReconciliationChunk.objects.bulk_create(chunks)
            run.state = ReconciliationRun.State.RUNNING
            run.started_at = run.last_progress_at = timezone.now()
            run.chunks_total = len(chunks)
            run.save()
        _dispatch_pending(run)


def _dispatch_pending(run: ReconciliationRun) -> int:
    """Send (after commit) every chunk not done, or close the run when none is left."""
    pending = list(run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True))
    if not pending:
        transaction.on_commit(lambda: reconciliation_finish(run_id=run.pk))
    for chunk_id in pending:
        publish_on_commit("bills.reconciliation_chunk", args=[chunk_id])
    return len(pending)


def _ledger_mismatches(records):
    ledger = Coalesce(
        Sum("collections__amount", filter=Q(collections__voided_at__isnull=True)),
        Value(ZERO),
        output_field=DecimalField(max_digits=12, decimal_places=2),
    )
    wrong_amount = records.annotate(ledger=ledger).exclude(amount=F("ledger")).values_list(
        "pk", flat=True
    )
    wrong_paid = records.filter(
        Q(paid=True, waived=False, amount__lt=F("bill_amount"))
        | Q(paid=False, amount__gte=F("bill_amount"))
        | Q(paid=False, waived=True)
    ).values_list("pk", flat=True)
    return sorted(set(wrong_amount) | set(wrong_paid))


def _fix(payment_id: int) -> dict | None:
    """Settle one record from its ledger; what changed, or None when it already agreed
    (another delivery of the chunk fixed it first)."""
    with transaction.atomic():
        customer_id = Payment.objects.values_list("customer_id", flat=True).get(pk=payment_id)
        payment = lock_customer_records(customer_id, [payment_id])[1][payment_id]
        before = {"amount": str(payment.amount), "paid": payment.paid}
        payment_settle(payment)
        after = {"amount": str(payment.amount), "paid": payment.paid}
        if after == before:
            return None
        payment.save(update_fields=["amount", "paid", "updated_at"])
    return {"payment_uid": str(payment.uid), "before": before, "after": after}


def reconciliation_chunk_process(*, chunk_id: int) -> None:
    """Reconcile the chunk's records, then add its figures to the run (once)."""
    chunk = ReconciliationChunk.objects.get(pk=chunk_id)
    if chunk.done_at is not None:
        transaction.on_commit(lambda: _finish_if_complete(chunk.run_id))
        return
    records = Payment.objects.filter(
        voided_at__isnull=True, pk__range=(chunk.first_payment_id, chunk.last_payment_id)
    )
    fixes = [fix for pk in _ledger_mismatches(records) if (fix := _fix(pk))]
    moved, moved_amount = 0, ZERO
    for payment_id in records.filter(amount__gt=F("bill_amount")).values_list("pk", flat=True):
        moved, moved_amount = _add(moved, moved_amount, carry_surplus(payment_id))
    # Every owner of a record here with credit: a surplus just carried may have become
    # balance that a record of an earlier chunk can take.
    owners = records.filter(customer__balance__gt=0).values_list("customer_id", flat=True)
    for customer_id in set(owners):
        moved, moved_amount = _add(moved, moved_amount, apply_balance(customer_id))
    with transaction.atomic():
        chunk = ReconciliationChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.done_at is None:
            chunk.done_at = timezone.now()
            chunk.save(update_fields=["done_at"])
            run = ReconciliationRun.objects.select_for_update().get(pk=chunk.run_id)
            kept = run.discrepancies + fixes[: max(MAX_DISCREPANCIES_KEPT
                                                   - len(run.discrepancies), 0)]
            ReconciliationRun.objects.filter(pk=run.pk).update(
                chunks_done=F("chunks_done") + 1,
                checked_count=F("checked_count") + records.count(),
                fixed_count=F("fixed_count") + len(fixes),
                credits_moved=F("credits_moved") + moved,
                credit_amount=F("credit_amount") + moved_amount,
                discrepancies=kept,
                last_progress_at=timezone.now(),
            )
        transaction.on_commit(lambda: _finish_if_complete(chunk.run_id))


def _add(moved: int, total: Decimal, amount: Decimal) -> tuple[int, Decimal]:
    return (moved + 1, total + amount) if amount else (moved, total)


def _finish_if_complete(run_id: int) -> None:
    if ReconciliationRun.objects.filter(
        pk=run_id, state=ReconciliationRun.State.RUNNING, chunks_done__gte=F("chunks_total")
    ).exists():
        reconciliation_finish(run_id=run_id)


def reconciliation_finish(*, run_id: int) -> None:
    ReconciliationRun.objects.filter(
        pk=run_id, state=ReconciliationRun.State.RUNNING, chunks_done__gte=F("chunks_total")
    ).update(
        state=ReconciliationRun.State.SUCCESS, finished_at=timezone.now(),
        last_progress_at=timezone.now(),
    )


def reconciliation_fail(*, run_id: int, error: str) -> None:
    ReconciliationRun.objects.filter(pk=run_id).exclude(state__in=FINISHED).update(
        state=ReconciliationRun.State.FAILED, error=error, finished_at=timezone.now()
    )


def reconciliation_chunk_fail(*, chunk_id: int, error: str) -> None:
    chunk = ReconciliationChunk.objects.get(pk=chunk_id)
    where = f"chunk {chunk.number} (payments {chunk.first_payment_id}-{chunk.last_payment_id})"
    reconciliation_fail(run_id=chunk.run_id, error=f"{where}: {error}")


def reconciliation_runs_resume(*, stale_seconds: int | None = None) -> int:
    """Hand over again any run with no progress for ``stale_seconds``
    (``RUN_STALE_SECONDS``): its plan, its chunks not done, or its close. Returns how
    many tasks it sent."""
    if stale_seconds is None:
        stale_seconds = settings.RUN_STALE_SECONDS
    stalled = ReconciliationRun.objects.stalled(stale_seconds)
    return sum(_resume(run_id) for run_id in stalled.values_list("pk", flat=True))


def _resume(run_id: int) -> int:
    # No lock on the run: its chunks lock their row, then the run's (see bills._resume).
    run = ReconciliationRun.objects.get(pk=run_id)
    if run.state in FINISHED:
        return 0
    # The hand-over counts as progress, so the next sweep gives it a full period.
    ReconciliationRun.objects.filter(pk=run.pk).update(last_progress_at=timezone.now())
    if run.state == ReconciliationRun.State.RUNNING:
        with transaction.atomic():
            return _dispatch_pending(run)
    return int(publish("bills.reconciliation_execute", args=[run.pk], task_id=run.task_id))


def reconciliation_progress(run: ReconciliationRun) -> dict:
    percent = 100 if run.state == ReconciliationRun.State.SUCCESS else (
        round(100 * run.chunks_done / run.chunks_total) if run.chunks_total else 0
    )
    return {"chunks_done": run.chunks_done, "chunks_total": run.chunks_total, "percent": percent}


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
