"""Money writes on one customer at once never deadlock and never answer 500 (issue 8, 1).

Real PostgreSQL, each request in its own thread and connection.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from billing.bills import bill_chunk_process
from billing.ledger import ledger_invariant_errors
from billing.models import BillRun, BillRunChunk, Customer, Package, Payment
from core.enums import UserKind
from tests.conftest import ApiClient
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _client(user) -> ApiClient:
    # A 500 is an answer to count, not an exception that ends the thread.
    return ApiClient(raise_request_exception=False).bearer(user)


def _in_thread(call):
    try:
        return call()
    finally:
        connection.close()


def _bill_run_for(customer: Customer, year: int, month: str) -> BillRunChunk:
    run = BillRun.objects.create(
        task_id=f"race-{customer.pk}-{month}", billing_year=year, billing_month=month,
        customer_ids=[customer.pk], state=BillRun.State.RUNNING, chunks_total=1,
        started_at=timezone.now(),
    )
    return BillRunChunk.objects.create(
        run=run, number=0, first_customer_id=customer.pk, last_customer_id=customer.pk
    )


def test_concurrent_corrections_and_collections_on_one_record_answer_only_2xx_4xx():
    staff = UserFactory(kind=UserKind.MANAGER)
    package = Package.objects.create(name="Race", speed_mbps=10, price=Decimal("100000.00"))
    customer = Customer.objects.create(name="Hasan", package=package)
    first = _client(staff).post("/payments", {
        "customer_id": customer.pk, "amount": "10.00", "billing_month": "MAY",
        "billing_year": 2026, "payment_method": "BKASH", "transaction_id": "FIRST",
    })
    assert first.status_code == 201, first.content
    record = first.json()
    # The next month's record, created at the same time by a bill-run chunk.
    chunk = _bill_run_for(customer, 2026, "JUNE")

    def put(n):
        body = {
            "amount": f"{100 + n}.00", "billing_month": "MAY", "payment_method": "NAGAD",
            "paid": False, "transaction_id": f"PUT-{n}", "payment_date": None, "note": f"{n}",
        }
        return _client(staff).put(f"/payments/{record['uid']}", body)

    def post(n):
        body = {
            "customer_id": customer.pk, "amount": "5.00", "billing_month": "MAY" if n % 2 else
            "JUNE", "billing_year": 2026, "payment_method": "BKASH", "transaction_id": f"P-{n}",
        }
        return _client(staff).post("/payments", body)

    calls = [lambda n=n: put(n) for n in range(10)] + [lambda n=n: post(n) for n in range(10)]
    calls.insert(10, lambda: bill_chunk_process(chunk_id=chunk.pk))
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(_in_thread, calls))

    answers = [r for r in results if not isinstance(r, int)]
    statuses = [r.status_code for r in answers]
    assert all(200 <= s < 500 for s in statuses), [
        (r.status_code, r.content[:300]) for r in answers if r.status_code >= 500
    ]
    assert statuses.count(200) == 10 and statuses.count(201) == 10
    assert ledger_invariant_errors(customer.pk) == []
    assert Payment.objects.filter(customer=customer, voided_at__isnull=True).count() == 2


def _wait_for_lock_wait(timeout: float = 10.0) -> None:
    """Until the request's backend waits on a lock (the chunk's uncommitted insert)."""
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the request never waited on the chunk's insert")


def test_a_bill_run_chunk_inserting_the_month_between_check_and_insert_is_not_a_500():
    staff = UserFactory(kind=UserKind.STAFF)
    package = Package.objects.create(name="Gap", speed_mbps=10, price=Decimal("500.00"))
    customer = Customer.objects.create(name="Nadia", package=package)
    chunk = _bill_run_for(customer, 2026, "JULY")
    inserted, release = threading.Event(), threading.Event()

    def chunk_held_open():
        try:
            with transaction.atomic():
                bill_chunk_process(chunk_id=chunk.pk)  # its savepoint: still uncommitted
                inserted.set()
                release.wait(20)
        finally:
            connection.close()

    holder = threading.Thread(target=chunk_held_open)
    holder.start()
    assert inserted.wait(10)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(_in_thread, lambda: _client(staff).post("/payments", {
            "customer_id": customer.pk, "amount": "200.00", "billing_month": "JULY",
            "billing_year": 2026, "payment_method": "BKASH", "transaction_id": "GAP-1",
        }))
        # The request saw no record, so it inserts one and waits on the chunk's row.
        try:
            _wait_for_lock_wait()
        finally:
            release.set()
            holder.join(20)
        response = answer.result(20)

    assert response.status_code == 201, response.content[:500]
    record = Payment.objects.get(customer=customer, voided_at__isnull=True)
    assert response.json()["uid"] == str(record.uid)
    assert record.amount == Decimal("200.00")
    assert record.note == "Auto-generated bill for JULY 2026"
    assert ledger_invariant_errors(customer.pk) == []
