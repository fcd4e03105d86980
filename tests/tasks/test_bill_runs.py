"""Bill runs, in-process (eager): the rules, whatever runs them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.test import override_settings
from django.utils import timezone

from billing import bills
from billing.models import BillRun, Customer, Notification, Package, Payment
from core.enums import PaymentMethod, Status, UserKind
from core.timeutils import business_month

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue():
    return {
        "paid": Package.objects.create(name="Home", speed_mbps=10, price=Decimal("500.00")),
        "zero": Package.objects.create(name="Promo", speed_mbps=5, price=Decimal("0.00")),
    }


def make_customers(package, count, **fields):
    start = Customer.objects.count()
    return Customer.objects.bulk_create(
        Customer(name=f"C{start + n}", phone=f"0171{start + n:07d}", package=package, **fields)
        for n in range(count)
    )


def run_month(client, month="JANUARY", year=2026, **kwargs):
    with_body = kwargs.pop("body", None)
    response = client.post(f"/customers/bills/generate?month={month}&year={year}", with_body)
    assert response.status_code == 202, response.content
    return response.json()


def test_bill_run_creates_one_unpaid_record_per_billable_customer(
    client_as, catalogue, django_capture_on_commit_callbacks
):
    client, _ = client_as(UserKind.MANAGER)
    billable = make_customers(catalogue["paid"], 7)
    make_customers(catalogue["paid"], 2, is_free=True)
    make_customers(catalogue["paid"], 2, is_active=False)
    make_customers(catalogue["paid"], 1, status=Status.REMOVED)
    make_customers(catalogue["zero"], 3)

    with override_settings(BILL_RUN_CHUNK_SIZE=3), django_capture_on_commit_callbacks(
        execute=True
    ):
        accepted = run_month(client)

    assert set(accepted) == {"message", "task_id", "billing_month", "billing_year"}
    assert (accepted["billing_month"], accepted["billing_year"]) == ("JANUARY", 2026)
    records = Payment.objects.filter(billing_year=2026, billing_month="JANUARY")
    assert sorted(records.values_list("customer_id", flat=True)) == sorted(c.pk for c in billable)
    for record in records:
        assert record.amount == Decimal("0.00")
        assert record.paid is False
        assert record.bill_amount == Decimal("500.00")
        assert record.payment_method == PaymentMethod.OTHER
        assert record.note == "Auto-generated bill for JANUARY 2026"
    run = BillRun.objects.get(task_id=accepted["task_id"])
    assert run.state == BillRun.State.SUCCESS
    assert (run.billable_count, run.created_count, run.skipped_count, run.missing_count) == (
        7, 7, 0, 0,
    )
    assert run.chunks_total == run.chunks_done >= 3
    notices = Notification.objects.filter(event=Notification.Event.BILL_ISSUED)
    assert notices.count() == 7  # SMS only: the customers have phones, no emails
    assert notices.filter(state=Notification.State.SENT).count() == 7

    status = client.get(f"/tasks/{accepted['task_id']}")
    assert status.status_code == 200
    body = status.json()
    assert set(body) == {"task_id", "status", "result", "progress"}
    assert body["status"] == "SUCCESS"
    assert body["result"]["created"] == 7 and body["result"]["missing"] == 0
    assert body["progress"]["percent"] == 100


def test_second_run_adds_nothing_and_counts_skips(
    client_as, catalogue, django_capture_on_commit_callbacks
):
    client, _ = client_as(UserKind.ADMIN)
    make_customers(catalogue["paid"], 5)
    with django_capture_on_commit_callbacks(execute=True):
        run_month(client)
        second = run_month(client)
    assert Payment.objects.filter(billing_month="JANUARY", billing_year=2026).count() == 5
    run = BillRun.objects.get(task_id=second["task_id"])
    assert (run.created_count, run.skipped_count, run.missing_count) == (0, 5, 0)
    assert Notification.objects.filter(event=Notification.Event.BILL_ISSUED).count() == 5


def test_a_chunk_processed_twice_creates_nothing_the_second_time(catalogue):
    make_customers(catalogue["paid"], 4)
    run = BillRun.objects.create(task_id="t-1", billing_year=2026, billing_month="MARCH")
    bills.bill_run_plan(run_id=run.pk)
    chunk = run.chunks.get()
    assert bills.bill_chunk_process(chunk_id=chunk.pk) == 4
    assert bills.bill_chunk_process(chunk_id=chunk.pk) == 0
    run.refresh_from_db()
    assert run.chunks_done == 1 and run.created_count == 4
    assert Payment.objects.filter(billing_month="MARCH").count() == 4


def test_a_run_limited_to_customer_ids(client_as, catalogue, django_capture_on_commit_callbacks):
    client, _ = client_as(UserKind.ADMIN)
    customers = make_customers(catalogue["paid"], 5)
    chosen = [customers[1].pk, customers[3].pk]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/customers/bills/generate?month=MAY&year=2026", {"customer_ids": chosen}
        )
    assert response.status_code == 202
    assert sorted(Payment.objects.values_list("customer_id", flat=True)) == chosen


def test_month_defaults_to_this_business_month(
    client_as, catalogue, django_capture_on_commit_callbacks
):
    client, _ = client_as(UserKind.ADMIN)
    make_customers(catalogue["paid"], 1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/customers/bills/generate")
    year, month = business_month()
    assert response.status_code == 202
    assert (response.json()["billing_month"], response.json()["billing_year"]) == (month, year)
    assert Payment.objects.get().billing_month == month


@pytest.mark.parametrize(
    "query, field",
    [("month=JANUAR", "month"), ("year=1999", "year"), ("year=abc", "year")],
)
def test_bad_generate_input_is_400(client_as, query, field):
    client, _ = client_as(UserKind.ADMIN)
    response = client.post(f"/customers/bills/generate?{query}")
    assert response.status_code == 400
    assert field in response.json()
    assert not BillRun.objects.exists()


@pytest.mark.parametrize("ids", [[987654], [2**63]])
def test_unknown_customer_ids_are_400(client_as, ids):
    client, _ = client_as(UserKind.ADMIN)
    response = client.post("/customers/bills/generate", {"customer_ids": ids})
    assert response.status_code == 400
    assert [key.split(".")[0] for key in response.json()] == ["customer_ids"]
    assert not BillRun.objects.exists()


@pytest.mark.parametrize("kind", [UserKind.STAFF, UserKind.CUSTOMER, UserKind.OTHER])
def test_only_managers_and_admins_generate(client_as, kind):
    client, _ = client_as(kind)
    assert client.post("/customers/bills/generate").status_code == 403
    assert not BillRun.objects.exists()


def test_unknown_task_is_404(client_as):
    client, _ = client_as(UserKind.ADMIN)
    assert client.get("/tasks/no-such-task").status_code == 404


def lose_message(run, state=BillRun.State.PENDING, minutes=30):
    """The run as a lost message leaves it: the broker took it, nothing came of it."""
    BillRun.objects.filter(pk=run.pk).update(
        state=state, enqueued=True, created_at=timezone.now() - timedelta(minutes=minutes),
        last_progress_at=timezone.now() - timedelta(minutes=minutes),
    )


def test_a_run_whose_message_was_lost_is_resumed_by_the_sweep(
    client_as, catalogue, django_capture_on_commit_callbacks
):
    client, _ = client_as(UserKind.ADMIN)
    make_customers(catalogue["paid"], 4)
    run = BillRun.objects.create(task_id="lost-1", billing_year=2026, billing_month="JULY")
    lose_message(run)

    with django_capture_on_commit_callbacks(execute=True):
        assert bills.bill_runs_resume(stale_seconds=600) == 1

    run.refresh_from_db()
    assert run.state == BillRun.State.SUCCESS
    assert Payment.objects.filter(billing_month="JULY").count() == 4
    assert client.get("/tasks/lost-1").json()["status"] == "SUCCESS"
    assert bills.bill_runs_resume(stale_seconds=0) == 0  # nothing left to hand over


def test_a_running_run_whose_chunks_were_lost_is_resumed(
    catalogue, django_capture_on_commit_callbacks
):
    make_customers(catalogue["paid"], 6)
    run = BillRun.objects.create(task_id="lost-2", billing_year=2026, billing_month="JULY")
    with override_settings(BILL_RUN_CHUNK_SIZE=2):
        bills.bill_run_plan(run_id=run.pk)  # its chunks' messages never leave (no commit)
    # Dispatched a moment ago, but the run has made no progress for half an hour.
    lose_message(run, state=BillRun.State.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        assert bills.bill_runs_resume(stale_seconds=600) == 3

    run.refresh_from_db()
    assert (run.state, run.chunks_done, run.created_count) == (BillRun.State.SUCCESS, 3, 6)


def test_a_run_making_progress_is_left_alone(catalogue):
    make_customers(catalogue["paid"], 2)
    run = BillRun.objects.create(task_id="busy-1", billing_year=2026, billing_month="JULY")
    BillRun.objects.filter(pk=run.pk).update(enqueued=True)
    assert bills.bill_runs_resume(stale_seconds=600) == 0
    run.refresh_from_db()
    assert run.state == BillRun.State.PENDING


def test_a_customer_created_during_a_run_is_billed_and_does_not_fail_it(catalogue):
    make_customers(catalogue["paid"], 5)
    run = BillRun.objects.create(task_id="mid-1", billing_year=2026, billing_month="AUGUST")
    with override_settings(BILL_RUN_CHUNK_SIZE=2):
        bills.bill_run_plan(run_id=run.pk)
    newcomer = make_customers(catalogue["paid"], 1)[0]
    for chunk in run.chunks.all():
        bills.bill_chunk_process(chunk_id=chunk.pk)
    bills.bill_run_finish(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == BillRun.State.SUCCESS, run.error
    assert (run.billable_count, run.missing_count, run.newcomer_count) == (5, 0, 1)
    assert Payment.objects.filter(customer=newcomer, billing_month="AUGUST").count() == 1
    assert bills.bill_run_result(run)["newcomers"] == 1
    assert (run.created_count, run.skipped_count) == (6, 0)


def test_a_customer_made_billable_after_its_chunk_is_billed_at_the_close(catalogue):
    customers = make_customers(catalogue["paid"], 4)
    late = customers[0]
    Customer.objects.filter(pk=late.pk).update(is_active=False)
    run = BillRun.objects.create(task_id="mid-2", billing_year=2026, billing_month="AUGUST")
    bills.bill_run_plan(run_id=run.pk)
    bills.bill_chunk_process(chunk_id=run.chunks.get().pk)
    Customer.objects.filter(pk=late.pk).update(is_active=True, updated_at=timezone.now())
    bills.bill_run_finish(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == BillRun.State.SUCCESS, run.error
    assert (run.missing_count, run.newcomer_count) == (0, 1)
    assert Payment.objects.filter(customer=late, billing_month="AUGUST").exists()


def test_a_planned_customer_left_without_a_record_still_fails_the_run(catalogue):
    customers = make_customers(catalogue["paid"], 3)
    Customer.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    run = BillRun.objects.create(task_id="gap-1", billing_year=2026, billing_month="AUGUST")
    bills.bill_run_plan(run_id=run.pk)
    bills.bill_chunk_process(chunk_id=run.chunks.get().pk)
    # A record lost behind the run's back (voided), the customer unchanged since planning.
    Payment.objects.filter(customer=customers[1]).update(voided_at=timezone.now())
    bills.bill_run_finish(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == BillRun.State.FAILED
    assert run.missing_count == 1 and run.newcomer_count == 0


def test_a_chunk_that_fails_for_good_ends_the_run_failed_with_its_error(catalogue):
    from tasks.bills import bill_run_chunk

    make_customers(catalogue["paid"], 2)
    # A year outside the database's check: every insert of the chunk is refused (a bug).
    run = BillRun.objects.create(task_id="bug-1", billing_year=1999, billing_month="MAY")
    bills.bill_run_plan(run_id=run.pk)
    with pytest.raises(IntegrityError):
        bill_run_chunk(run.chunks.get().pk)

    run.refresh_from_db()
    assert run.state == BillRun.State.FAILED
    assert "IntegrityError" in run.error and "chunk 0" in run.error
    assert run.finished_at is not None
    assert bills.bill_runs_resume(stale_seconds=0) == 0  # a failed run is not resumed


@pytest.mark.postgres
def test_the_close_is_planned_on_statistics_that_count_the_month_just_written(catalogue):
    """A first month: the records table was never analysed. Planned on those statistics,
    the close's anti-join scanned every record once per customer (minutes at 100,000)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    make_customers(catalogue["paid"], 5000)
    run = bills.bill_run_start(requested_by=None, year=2026, month="JANUARY")
    bills.bill_run_plan(run_id=run.pk)
    for chunk_id in run.chunks.order_by("number").values_list("pk", flat=True):
        bills.bill_chunk_process(chunk_id=chunk_id)

    with CaptureQueriesContext(connection) as close:
        bills.bill_run_finish(run_id=run.pk)

    (health_check,) = [q["sql"] for q in close.captured_queries if 'COUNT(*)' in q["sql"]
                       and "NOT EXISTS" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {health_check}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Every customer would read the month's records again, filtering them one by one.
    rescanned_per_customer = "Anti Join" in plan and "Join Filter: (u0.customer_id" in plan
    assert not rescanned_per_customer, plan
    run.refresh_from_db()
    assert (run.state, run.created_count) == (BillRun.State.SUCCESS, 5000)
