"""Bill runs: every billable customer gets one unpaid record for the month.

A run is planned as chunks of customer ids; each chunk creates its records with
one set-based statement that the partial unique constraint guards
(``ON CONFLICT DO NOTHING``), together with the "bill issued" notices, in one
transaction. A chunk is marked done in that same transaction, so a retry, a
redelivery, a second run or a run killed half way never makes a second record
and never skips one.
"""

import uuid
from math import ceil

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Max, Min, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import User
from billing.models import BillRun, BillRunChunk, Customer, Payment
from core.enums import BillingMonth, PaymentMethod, Status
from core.errors import field_error
from core.queue import publish, publish_on_commit
from core.timeutils import business_month


def billable_customers(customer_ids: list[int] | None = None) -> QuerySet[Customer]:
    """ACTIVE, switched on, not free, on a package priced above zero."""
    customers = Customer.objects.filter(
        status=Status.ACTIVE, is_active=True, is_free=False, package__price__gt=0
    )
    if customer_ids:
        customers = customers.filter(pk__in=customer_ids)
    return customers


def bill_note(month: str, year: int) -> str:
    return f"Auto-generated bill for {month} {year}"


def bill_run_start(
    *,
    requested_by: User | None,
    year: int | None = None,
    month: BillingMonth | None = None,
    customer_ids: list[int] | None = None,
) -> BillRun:
    """Record a run and hand it to the queue after commit."""
    this_year, this_month = business_month()
    if customer_ids:
        customer_ids = sorted(set(customer_ids))
        known = set(Customer.objects.filter(pk__in=customer_ids).values_list("pk", flat=True))
        unknown = [pk for pk in customer_ids if pk not in known]
        if unknown:
            raise field_error("customer_ids", f"Unknown customers: {unknown[:20]}")
    with transaction.atomic():
        run = BillRun.objects.create(
            task_id=str(uuid.uuid4()),
            requested_by=requested_by,
            billing_year=year or this_year,
            billing_month=month or this_month,
            customer_ids=customer_ids or None,
        )
        _dispatch_run(run)
    return run


def _dispatch_run(run: BillRun) -> None:
    publish_on_commit(
        "bills.run_execute",
        args=[run.pk],
        task_id=run.task_id,
        then=lambda: BillRun.objects.filter(pk=run.pk).update(enqueued=True),
    )


def bill_run_plan(*, run_id: int) -> None:
    """Split the run into chunks (once) and dispatch the ones not done."""
    with transaction.atomic():
        run = BillRun.objects.select_for_update().get(pk=run_id)
        if run.state in (BillRun.State.SUCCESS, BillRun.State.FAILED):
            return
        if run.state == BillRun.State.PENDING:
            customers = billable_customers(run.customer_ids)
            bounds = customers.aggregate(first=Min("pk"), last=Max("pk"))
            size = settings.BILL_RUN_CHUNK_SIZE
            chunks = []
            if bounds["first"] is not None:
                span = bounds["last"] - bounds["first"] + 1
                chunks = [
                    BillRunChunk(
                        run=run,
                        number=n,
                        first_customer_id=bounds["first"] + n * size,
                        last_customer_id=min(bounds["first"] + (n + 1) * size - 1, bounds["last"]),
                    )
                    for n in range(ceil(span / size))
                ]
            BillRunChunk.objects.bulk_create(chunks)
            run.state = BillRun.State.RUNNING
            run.enqueued = True
            run.started_at = timezone.now()
            run.billable_count = customers.count()
            run.chunks_total = len(chunks)
            run.save()
        pending = list(run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True))
        if not pending:
            transaction.on_commit(lambda: bill_run_finish(run_id=run.pk))
        for chunk_id in pending:
            _dispatch_chunk(chunk_id)


def _dispatch_chunk(chunk_id: int) -> None:
    BillRunChunk.objects.filter(pk=chunk_id).update(dispatched_at=timezone.now())
    publish_on_commit("bills.run_chunk", args=[chunk_id])


_UUID_SQL = {"postgresql": "gen_random_uuid()", "sqlite": "lower(hex(randomblob(16)))"}

_INSERT_BILLS = """
    INSERT INTO billing_payment
        (uid, created_at, updated_at, customer_id, billing_year, billing_month, bill_amount,
         amount, waived, paid, payment_method, transaction_id, note)
    SELECT {uuid}, %s, %s, c.id, %s, %s, p.price, 0, false, false, %s, '', %s
    FROM billing_customer c JOIN billing_package p ON p.id = c.package_id
    WHERE c.id BETWEEN %s AND %s {only}
      AND c.status = 'ACTIVE' AND c.is_active AND NOT c.is_free AND p.price > 0
    ON CONFLICT DO NOTHING
    RETURNING id, customer_id
"""

_INSERT_NOTICES = """
    INSERT INTO billing_notification
        (customer_id, payment_id, event, event_key, channel, state, attempts,
         next_attempt_at, last_error, created_at)
    SELECT c.id, b.id, 'BILL_ISSUED', 'bill:' || b.id, 'SMS', 'PENDING', 0, %s, '', %s
      FROM {bills} b JOIN billing_customer c ON c.id = b.customer_id WHERE c.phone <> ''
    UNION ALL
    SELECT c.id, b.id, 'BILL_ISSUED', 'bill:' || b.id, 'EMAIL', 'PENDING', 0, %s, '', %s
      FROM {bills} b JOIN billing_customer c ON c.id = b.customer_id WHERE c.email <> ''
    ON CONFLICT DO NOTHING
"""


def _create_chunk_bills(run: BillRun, chunk: BillRunChunk) -> int:
    """Insert the chunk's missing records and their notices; the number of records made."""
    now = timezone.now()
    ids = [pk for pk in run.customer_ids or [] if
           chunk.first_customer_id <= pk <= chunk.last_customer_id]
    if run.customer_ids and not ids:
        return 0
    only = f"AND c.id IN ({', '.join(['%s'] * len(ids))})" if ids else ""
    insert = _INSERT_BILLS.format(uuid=_UUID_SQL[connection.vendor], only=only)
    params = [now, now, run.billing_year, run.billing_month, PaymentMethod.OTHER,
              bill_note(run.billing_month, run.billing_year),
              chunk.first_customer_id, chunk.last_customer_id, *ids]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip: the records and their notices.
            cursor.execute(
                f"WITH created AS ({insert}), notices AS ("
                + _INSERT_NOTICES.format(bills="created")
                + ") SELECT count(*) FROM created",
                [*params, now, now, now, now],
            )
            return cursor.fetchone()[0]
        cursor.execute(insert, params)
        created = [row[0] for row in cursor.fetchall()]
        if created:
            bills = "(SELECT id, customer_id FROM billing_payment WHERE id IN ({}))".format(
                ", ".join(str(int(pk)) for pk in created)
            )
            cursor.execute(_INSERT_NOTICES.format(bills=bills), [now, now, now, now])
        return len(created)


def bill_chunk_process(*, chunk_id: int) -> int:
    """Do one chunk exactly once; returns the records it created (0 when already done)."""
    with transaction.atomic():
        # Only the chunk's row: locking the run's too (select_related's default) made a
        # run's chunks wait for one another, one at a time.
        chunk = (
            BillRunChunk.objects.select_for_update(of=("self",))
            .select_related("run")
            .get(pk=chunk_id)
        )
        if chunk.done_at is not None:
            # A redelivery: closing the run may be what was lost.
            run_id = chunk.run_id
            transaction.on_commit(lambda: _finish_if_complete(run_id))
            return 0
        created = _create_chunk_bills(chunk.run, chunk)
        chunk.created_count, chunk.done_at = created, timezone.now()
        chunk.save(update_fields=["created_count", "done_at"])
        BillRun.objects.filter(pk=chunk.run_id).update(
            chunks_done=F("chunks_done") + 1, created_count=F("created_count") + created
        )
        run_id = chunk.run_id
        transaction.on_commit(lambda: _finish_if_complete(run_id))
    if created:
        from billing.notifications import notifications_dispatch_soon

        notifications_dispatch_soon()
    return created


def _finish_if_complete(run_id: int) -> None:
    if BillRun.objects.filter(
        pk=run_id, state=BillRun.State.RUNNING, chunks_done__gte=F("chunks_total")
    ).exists():
        bill_run_finish(run_id=run_id)


def bill_run_finish(*, run_id: int) -> None:
    """Close the run with its health check, then reconcile the month."""
    with transaction.atomic():
        run = BillRun.objects.select_for_update().get(pk=run_id)
        if run.state != BillRun.State.RUNNING or run.chunks_done < run.chunks_total:
            return
        live = Payment.objects.filter(
            customer=OuterRef("pk"),
            billing_year=run.billing_year,
            billing_month=run.billing_month,
            voided_at__isnull=True,
        )
        run.missing_count = (
            billable_customers(run.customer_ids).filter(~Exists(live)).count()
        )
        run.skipped_count = max(run.billable_count - run.created_count, 0)
        run.state = BillRun.State.SUCCESS if run.missing_count == 0 else BillRun.State.FAILED
        if run.missing_count:
            run.error = f"{run.missing_count} billable customer(s) still have no record."
        run.finished_at = timezone.now()
        run.save()
        from billing.reconciliation import reconciliation_start

        reconciliation_start(trigger=f"BILL_RUN {run.billing_month} {run.billing_year}")


def bill_runs_resume(*, stale_seconds: int = 300) -> int:
    """Hand over again what the queue lost: runs the broker never took, and chunks
    dispatched long ago and still not done; and close the runs whose every chunk is done.
    Returns how many tasks it sent."""
    sent = 0
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_seconds)
    for run in BillRun.objects.filter(state=BillRun.State.PENDING, enqueued=False):
        if publish("bills.run_execute", args=[run.pk], task_id=run.task_id):
            BillRun.objects.filter(pk=run.pk).update(enqueued=True)
            sent += 1
    stale = BillRunChunk.objects.filter(
        run__state=BillRun.State.RUNNING, done_at__isnull=True, dispatched_at__lt=cutoff
    )
    for chunk_id in stale.values_list("pk", flat=True):
        if publish("bills.run_chunk", args=[chunk_id]):
            BillRunChunk.objects.filter(pk=chunk_id).update(dispatched_at=timezone.now())
            sent += 1
    # Every chunk done but the run never closed (its worker died in between).
    done = BillRun.objects.filter(state=BillRun.State.RUNNING, chunks_done__gte=F("chunks_total"))
    for run_id in done.values_list("pk", flat=True):
        bill_run_finish(run_id=run_id)
    return sent


def bill_run_monthly() -> BillRun:
    """The scheduled run for the current business month."""
    return bill_run_start(requested_by=None)


def bill_run_progress(run: BillRun) -> dict:
    percent = 100 if run.state == BillRun.State.SUCCESS else (
        round(100 * run.chunks_done / run.chunks_total) if run.chunks_total else 0
    )
    return {"chunks_done": run.chunks_done, "chunks_total": run.chunks_total, "percent": percent}


def bill_run_result(run: BillRun) -> dict:
    return {
        "run_uid": str(run.uid),
        "billing_month": run.billing_month,
        "billing_year": run.billing_year,
        "state": run.state,
        "billable": run.billable_count,
        "created": run.created_count,
        "skipped": run.skipped_count,
        "missing": run.missing_count,
        "error": run.error,
    }


