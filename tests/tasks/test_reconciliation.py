"""Reconciliation: records against their ledger, and surplus carried forward."""

from decimal import Decimal

import pytest

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


def run_now(trigger="TEST"):
    run = ReconciliationRun.objects.create(task_id=f"task-{trigger}", trigger=trigger)
    return reconciliation.reconciliation_execute(run_id=run.pk)


def ledger_sum(payment):
    return sum(c.amount for c in payment.collections.filter(voided_at__isnull=True))


def test_a_record_that_disagrees_with_its_ledger_is_fixed_and_written_down(customer, staff):
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


def test_surplus_moves_to_the_next_unpaid_record(customer, staff):
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


def test_surplus_without_a_next_record_becomes_balance_then_pays_the_next_bill(customer, staff):
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


def test_a_clean_ledger_changes_nothing(customer, staff):
    record(customer, staff, "300.00", "MAY")
    run = run_now()
    assert (run.fixed_count, run.credits_moved, run.discrepancies) == (0, 0, [])
    assert run.checked_count == 1


def test_reconciliation_result_is_visible_through_the_task_endpoint(client_as, customer, staff):
    client, _ = client_as(UserKind.ADMIN)
    record(customer, staff, "100.00", "JUNE")
    run = reconciliation.reconciliation_start(trigger="MANUAL")
    reconciliation.reconciliation_execute(run_id=run.pk)
    body = client.get(f"/tasks/{run.task_id}").json()
    assert body["status"] == "SUCCESS"
    assert body["result"]["checked"] == 1
    assert body["result"]["trigger"] == "MANUAL"
