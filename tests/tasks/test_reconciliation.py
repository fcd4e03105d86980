"""Reconciliation: records against their ledger, and surplus carried forward."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.test import override_settings
from django.utils import timezone

from billing import reconciliation
from billing.models import Collection, Customer, Package, Payment, ReconciliationRun
from billing.services import payment_record
from core.enums import PaymentMethod, UserKind
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    package = Package.objects.create(name="Home", speed_mbps=10, price=Decimal("500.00"))
    return Customer.objects.create(name="Rahim", phone="01711000000", package=package)


@pytest.fixture
def staff():
    return UserFactory(kind=UserKind.STAFF)


def record(customer, staff, amount, month, **extra):
    return payment_record(
        customer=customer, amount=Decimal(amount), billing_month=month, billing_year=2026,
        payment_method=PaymentMethod.CASH, entered_by=staff, **extra,
    )


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Tasks are sent after commit: a block whose sent tasks run at its end, in-process."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def run_now(committed):
    def run(trigger="TEST"):
        run = ReconciliationRun.objects.create(task_id=f"task-{trigger}", trigger=trigger)
        with committed():
            reconciliation.reconciliation_plan(run_id=run.pk)
        run.refresh_from_db()
        return run

    return run


def ledger_sum(payment):
    return sum(c.amount for c in payment.collections.filter(voided_at__isnull=True))


def test_a_record_that_disagrees_with_its_ledger_is_fixed_and_written_down(
    customer, staff, run_now
):
    payment = record(customer, staff, "200.00", "JANUARY")
    Payment.objects.filter(pk=payment.pk).update(amount=Decimal("999.00"), paid=True)

    run = run_now()

    payment.refresh_from_db()
    assert payment.amount == Decimal("200.00") == ledger_sum(payment)
    assert payment.paid is False
    assert run.state == ReconciliationRun.State.SUCCESS
    assert run.fixed_count == 1
    assert run.discrepancies == [{
        "payment_uid": str(payment.uid),
        "before": {"amount": "999.00", "paid": True},
        "after": {"amount": "200.00", "paid": False},
    }]


def test_surplus_moves_to_the_next_unpaid_record(customer, staff, run_now):
    january = record(customer, staff, "500.00", "JANUARY")
    february = record(customer, staff, "100.00", "FEBRUARY")
    # A second collection lands on January after it was settled, by a correction.
    Collection.objects.create(
        payment=january, amount=Decimal("150.00"), payment_method=PaymentMethod.BKASH,
        transaction_id="LATE-1", payment_date=january.payment_date,
    )
    Payment.objects.filter(pk=january.pk).update(amount=Decimal("650.00"))

    run = run_now()

    january.refresh_from_db()
    february.refresh_from_db()
    assert january.amount == Decimal("500.00") == ledger_sum(january)
    assert january.paid is True
    assert february.amount == Decimal("250.00") == ledger_sum(february)
    assert run.credits_moved == 1 and run.credit_amount == Decimal("150.00")
    kinds = list(february.collections.values_list("kind", flat=True))
    assert kinds == [Collection.Kind.COLLECTION, Collection.Kind.CREDIT_IN]


def test_surplus_without_a_next_record_becomes_balance_then_pays_the_next_bill(
    customer, staff, run_now
):
    march = record(customer, staff, "500.00", "MARCH")
    Collection.objects.create(
        payment=march, amount=Decimal("80.00"), payment_method=PaymentMethod.CASH,
        payment_date=march.payment_date,
    )
    Payment.objects.filter(pk=march.pk).update(amount=Decimal("580.00"))

    run_now("first")
    customer.refresh_from_db()
    assert customer.balance == Decimal("80.00")

    april = Payment.objects.create(
        customer=customer, billing_year=2026, billing_month="APRIL", bill_amount=Decimal("500.00")
    )
    run_now("second")
    customer.refresh_from_db()
    april.refresh_from_db()
    assert customer.balance == Decimal("0.00")
    assert april.amount == Decimal("80.00") == ledger_sum(april)
    # Money is neither lost nor doubled: all collections = all record amounts + balances.
    collected = sum(
        c.amount for c in Collection.objects.filter(kind=Collection.Kind.COLLECTION)
    )
    assert collected == sum(p.amount for p in Payment.objects.all()) + customer.balance


def test_a_clean_ledger_changes_nothing(customer, staff, run_now):
    record(customer, staff, "300.00", "MAY")
    run = run_now()
    assert (run.fixed_count, run.credits_moved, run.discrepancies) == (0, 0, [])
    assert run.checked_count == 1


def test_reconciliation_result_is_visible_through_the_task_endpoint(
    client_as, customer, staff, committed
):
    client, _ = client_as(UserKind.ADMIN)
    record(customer, staff, "100.00", "JUNE")
    with committed():
        run = reconciliation.reconciliation_start(trigger="MANUAL")
    body = client.get(f"/tasks/{run.task_id}").json()
    assert body["status"] == "SUCCESS"
    assert body["result"]["checked"] == 1
    assert body["result"]["trigger"] == "MANUAL"
    assert body["progress"] == {"chunks_done": 1, "chunks_total": 1, "percent": 100}


def test_reconciliation_works_in_chunks_and_closes_when_all_are_done(customer, staff, run_now):
    months = ["JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY"]
    payments = [record(customer, staff, "100.00", month) for month in months]
    Payment.objects.filter(pk__in=[p.pk for p in payments[1:4]]).update(amount=Decimal("7.00"))

    with override_settings(RECONCILIATION_CHUNK_SIZE=2):
        run = run_now()

    assert run.state == ReconciliationRun.State.SUCCESS
    assert (run.chunks_total, run.chunks_done) == (3, 3)
    assert run.chunks.filter(done_at__isnull=True).count() == 0
    assert (run.checked_count, run.fixed_count) == (5, 3)
    assert len(run.discrepancies) == 3
    assert set(Payment.objects.values_list("amount", flat=True)) == {Decimal("100.00")}
    assert run.started_at <= run.finished_at


def test_a_surplus_in_a_later_chunk_pays_an_earlier_unpaid_record(customer, staff, run_now):
    january = Payment.objects.create(
        customer=customer, billing_year=2026, billing_month="JANUARY",
        bill_amount=Decimal("500.00"),
    )
    february = record(customer, staff, "600.00", "FEBRUARY")

    with override_settings(RECONCILIATION_CHUNK_SIZE=1):
        run = run_now()

    january.refresh_from_db()
    february.refresh_from_db()
    customer.refresh_from_db()
    assert (february.amount, january.amount, customer.balance) == (
        Decimal("500.00"), Decimal("100.00"), Decimal("0.00")
    )
    assert run.credits_moved == 2 and run.credit_amount == Decimal("200.00")


def refuse_payment_updates(message):
    """A database that refuses to change a record (a trigger): a real failure of a step."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION refuse_update() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_update BEFORE UPDATE ON billing_payment
            FOR EACH ROW EXECUTE FUNCTION refuse_update();
        """)


@pytest.mark.postgres
def test_a_reconciliation_that_raises_ends_failed_with_its_error(
    client_as, customer, staff, committed
):
    client, _ = client_as(UserKind.ADMIN)
    payment = record(customer, staff, "100.00", "JUNE")
    Payment.objects.filter(pk=payment.pk).update(amount=Decimal("1.00"))
    refuse_payment_updates("records are frozen")

    with pytest.raises(DatabaseError, match="records are frozen"), committed():
        reconciliation.reconciliation_start(trigger="MANUAL")

    run = ReconciliationRun.objects.get()
    assert run.state == ReconciliationRun.State.FAILED
    assert "records are frozen" in run.error and run.finished_at is not None
    body = client.get(f"/tasks/{run.task_id}").json()
    assert body["status"] == "FAILURE"
    assert "records are frozen" in body["result"]["error"]
    assert reconciliation.reconciliation_runs_resume(stale_seconds=0) == 0


def test_a_reconciliation_whose_message_was_lost_is_resumed(customer, staff, committed):
    payment = record(customer, staff, "100.00", "JULY")
    Payment.objects.filter(pk=payment.pk).update(amount=Decimal("3.00"))
    run = ReconciliationRun.objects.create(task_id="lost-r", trigger="NIGHTLY")
    ReconciliationRun.objects.filter(pk=run.pk).update(
        last_progress_at=timezone.now() - timedelta(hours=1)
    )
    with committed():
        assert reconciliation.reconciliation_runs_resume(stale_seconds=600) == 1
    run.refresh_from_db()
    assert run.state == ReconciliationRun.State.SUCCESS and run.fixed_count == 1
    assert reconciliation.reconciliation_runs_resume(stale_seconds=0) == 0
