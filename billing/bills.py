"""Bill runs: every billable customer gets one unpaid record for the month.

A run is planned as chunks of customer ids; each chunk creates its records with
one set-based statement that the partial unique constraint guards
(``ON CONFLICT DO NOTHING``), together with the "bill issued" notices, in one
transaction. A chunk is marked done in that same transaction, so a retry, a
redelivery, a second run or a run killed half way never makes a second record
and never skips one.

Every step records the run's progress (``last_progress_at``); the resume sweep hands a
run with no progress for ``RUN_STALE_SECONDS`` over again, whatever it believes about
its messages (a message can be lost after the broker took it), and every step is safe
to receive twice. The plan fixes the customers the run is for (those up to the highest
id at planning); customers created or made billable during the run are billed when it
closes and counted as newcomers, and the health check judges only the planned ones.
"""

import uuid
from datetime import timedelta
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
from core.validators import INT64_MAX


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
            chunks, now = [], timezone.now()
            if bounds["first"] is not None:
                span = bounds["last"] - bounds["first"] + 1
                chunks = [
                    BillRunChunk(
                        run=run,
                        number=n,
                        first_customer_id=bounds["first"] + n * size,
                        last_customer_id=min(bounds["first"] + (n + 1) * size - 1, bounds["last"]),
                        dispatched_at=now,
                    )
                    for n in range(ceil(span / size))
                ]
            BillRunChunk.objects.bulk_create(chunks)
            run.state = BillRun.State.RUNNING
            run.enqueued = True
            run.started_at = run.last_progress_at = now
            run.billable_count = customers.count()
            run.chunks_total = len(chunks)
            run.planned_through_id = Customer.objects.aggregate(last=Max("pk"))["last"] or 0
            run.save()
        _dispatch_pending(run)


def _dispatch_pending(run: BillRun) -> int:
    """Send (after commit) every chunk of the run not done, or close it when none is left;
    the number of chunks sent."""
    pending = list(run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True))
    if not pending:
        transaction.on_commit(lambda: bill_run_finish(run_id=run.pk))
    for chunk_id in pending:
        publish_on_commit("bills.run_chunk", args=[chunk_id])
    return len(pending)


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


def _create_chunk_bills(
    run: BillRun, first: int, last: int, where: str = "", where_params: tuple = ()
) -> int:
    """Insert the missing records of the run's customers with ids ``first``..``last`` (and
    the SQL condition ``where`` on ``c``), with their notices; the number of records made."""
    now = timezone.now()
    ids = [pk for pk in run.customer_ids or [] if first <= pk <= last]
    if run.customer_ids and not ids:
        return 0
    only = f"AND c.id IN ({', '.join(['%s'] * len(ids))})" if ids else ""
    insert = _INSERT_BILLS.format(uuid=_UUID_SQL[connection.vendor], only=only + where)
    params = [now, now, run.billing_year, run.billing_month, PaymentMethod.OTHER,
              bill_note(run.billing_month, run.billing_year), first, last, *ids, *where_params]
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
        created = _create_chunk_bills(chunk.run, chunk.first_customer_id, chunk.last_customer_id)
        chunk.created_count, chunk.done_at = created, timezone.now()
        chunk.save(update_fields=["created_count", "done_at"])
        BillRun.objects.filter(pk=chunk.run_id).update(
            chunks_done=F("chunks_done") + 1, created_count=F("created_count") + created,
            last_progress_at=timezone.now(),
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


def bill_chunk_fail(*, chunk_id: int, error: str) -> None:
    """A chunk failed for good (not a transient error): its run ends FAILED with it."""
    chunk = BillRunChunk.objects.get(pk=chunk_id)
    where = f"chunk {chunk.number} (customers {chunk.first_customer_id}-"
    bill_run_fail(run_id=chunk.run_id, error=f"{where}{chunk.last_customer_id}): {error}")


def bill_run_fail(*, run_id: int, error: str) -> None:
    BillRun.objects.filter(
        pk=run_id, state__in=[BillRun.State.PENDING, BillRun.State.RUNNING]
    ).update(state=BillRun.State.FAILED, error=error, finished_at=timezone.now())


# A customer's change may be committed a little after the time it carries (updated_at is
# set before its transaction commits): the close looks back this much before the plan.
LATE_COMMIT_SLACK = timedelta(minutes=1)


def _bill_newcomers(run: BillRun) -> int:
    """Bill the customers the plan could not have seen as they are now: created after it
    (id above its bound) or changed since (made billable after their chunk, say)."""
    since = run.started_at - LATE_COMMIT_SLACK
    # Only those without a live record: most recently changed customers were billed by
    # their chunk, and an insert meeting their record would wait on whoever changes it.
    return _create_chunk_bills(
        run, 0, INT64_MAX,
        " AND (c.id > %s OR c.updated_at >= %s) AND NOT EXISTS (SELECT 1 FROM billing_payment"
        " b WHERE b.customer_id = c.id AND b.billing_year = %s AND b.billing_month = %s"
        " AND b.voided_at IS NULL)",
        (run.planned_through_id, since, run.billing_year, run.billing_month),
    )


def _fresh_statistics() -> None:
    """The run has just written a month of records that autovacuum may not have analysed
    yet (a first month: none at all). The close's anti-joins planned on such statistics
    loop over the whole table once per customer: minutes at 200,000 customers, hours at
    1,000,000. ANALYZE samples a fixed number of rows, well under a second."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (Customer, Payment):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def bill_run_finish(*, run_id: int) -> None:
    """Close the run: bill its newcomers, check its health, then reconcile the month."""
    with transaction.atomic():
        run = BillRun.objects.select_for_update().get(pk=run_id)
        if run.state != BillRun.State.RUNNING or run.chunks_done < run.chunks_total:
            return
        judged_before = timezone.now()
        _fresh_statistics()
        run.newcomer_count = _bill_newcomers(run)
        run.created_count += run.newcomer_count
        live = Payment.objects.filter(
            customer=OuterRef("pk"),
            billing_year=run.billing_year,
            billing_month=run.billing_month,
            voided_at__isnull=True,
        )
        # The planned customers only, and not one changed after the newcomers were billed
        # (the next run's to judge).
        planned = billable_customers(run.customer_ids).filter(
            pk__lte=run.planned_through_id or INT64_MAX, updated_at__lt=judged_before
        )
        run.missing_count = planned.filter(~Exists(live)).count()
        run.skipped_count = max(
            run.billable_count - (run.created_count - run.newcomer_count), 0
        )
        run.state = BillRun.State.SUCCESS if run.missing_count == 0 else BillRun.State.FAILED
        if run.missing_count:
            run.error = f"{run.missing_count} billable customer(s) still have no record."
        run.finished_at = run.last_progress_at = timezone.now()
        run.save()
        if run.newcomer_count:
            from billing.notifications import notifications_dispatch_soon

            transaction.on_commit(notifications_dispatch_soon)
        from billing.reconciliation import reconciliation_start

        reconciliation_start(trigger=f"BILL_RUN {run.billing_month} {run.billing_year}")


def bill_runs_resume(*, stale_seconds: int | None = None) -> int:
    """Hand over again what the queue lost or never took: runs the broker refused, at
    once; and any run with no progress for ``stale_seconds`` (``RUN_STALE_SECONDS``):
    its plan, or its chunks not done, or its close. Returns how many tasks it sent."""
    if stale_seconds is None:
        stale_seconds = settings.RUN_STALE_SECONDS
    sent = 0
    refused = BillRun.objects.filter(state=BillRun.State.PENDING, enqueued=False)
    stalled = BillRun.objects.stalled(stale_seconds)
    for run_id in (refused | stalled).values_list("pk", flat=True):
        sent += _resume(run_id)
    return sent


def _resume(run_id: int) -> int:
    # No lock on the run: its chunks lock their row, then the run's; taking them the other
    # way round here would deadlock with them. A race only sends a step twice.
    run = BillRun.objects.get(pk=run_id)
    if run.state not in (BillRun.State.PENDING, BillRun.State.RUNNING):
        return 0
    # The hand-over counts as progress, so the next sweep gives it a full period.
    BillRun.objects.filter(pk=run.pk).update(last_progress_at=timezone.now())
    if run.state == BillRun.State.RUNNING:
        with transaction.atomic():
            return _dispatch_pending(run)
    if publish("bills.run_execute", args=[run.pk], task_id=run.task_id):
        BillRun.objects.filter(pk=run.pk).update(enqueued=True)
        return 1
    return 0


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
        "newcomers": run.newcomer_count,
        "error": run.error,
    }


