"""Per customer, money in = what live records hold + balance, whatever is done (issue 8, 2).

``ledger_invariant_errors`` is checked after every money operation; hypothesis drives
random sequences of record, correct, void, bill run and reconcile on the real database
(tasks run in-process, after the commit the capture stands in for).
"""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.bills import bill_run_start
from billing.ledger import ledger_invariant_errors
from billing.models import Collection, Customer, Payment
from billing.reconciliation import reconciliation_start
from billing.services import payment_record, payment_update, payment_void
from core.enums import PaymentMethod, UserKind
from core.errors import FieldErrors
from tests.billing.factories import CustomerFactory, PackageFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

YEAR = 2026
MONTHS = ["JANUARY", "FEBRUARY", "MARCH", "APRIL"]


@pytest.fixture
def staff(db):
    return UserFactory(kind=UserKind.MANAGER)


@pytest.fixture
def customer(db):
    return CustomerFactory(package=PackageFactory(price=Decimal("1000.00")))


def record(customer, month, amount, staff, trxid=""):
    return payment_record(
        customer=customer, amount=Decimal(amount), billing_month=month, billing_year=YEAR,
        payment_method=PaymentMethod.BKASH, transaction_id=trxid, entered_by=staff,
    )


def reconcile(capture):
    with capture(execute=True):
        reconciliation_start(trigger="TEST")


def bill_run(capture, customer, month):
    with capture(execute=True):
        bill_run_start(requested_by=None, year=YEAR, month=month, customer_ids=[customer.pk])


def live(customer, month) -> Payment:
    return Payment.objects.get(
        customer=customer, billing_year=YEAR, billing_month=month, voided_at__isnull=True
    )


def test_voiding_money_carried_forward_takes_its_credit_back(
    customer, staff, django_capture_on_commit_callbacks
):
    """The issue's case: 1500 for January, 100 for February, a bill run, void January."""
    january = record(customer, "JANUARY", "1500.00", staff)
    record(customer, "FEBRUARY", "100.00", staff)
    bill_run(django_capture_on_commit_callbacks, customer, "MARCH")
    assert live(customer, "FEBRUARY").amount == Decimal("600.00")  # January's surplus
    assert ledger_invariant_errors(customer.pk) == []

    payment_void(payment=january, actor=staff)

    february = live(customer, "FEBRUARY")
    assert february.amount == Decimal("100.00")  # the live cash, no phantom credit
    assert ledger_invariant_errors(customer.pk) == []
    reversal = february.collections.get(kind=Collection.Kind.CREDIT_OUT)
    assert reversal.amount == Decimal("-500.00")
    assert reversal.source.kind == Collection.Kind.CREDIT_IN


def test_voiding_the_record_that_received_credit_gives_it_back(
    customer, staff, django_capture_on_commit_callbacks
):
    record(customer, "JANUARY", "1500.00", staff)
    february = record(customer, "FEBRUARY", "100.00", staff)
    reconcile(django_capture_on_commit_callbacks)

    payment_void(payment=february, actor=staff)

    january = live(customer, "JANUARY")
    assert january.amount == Decimal("1500.00")  # the credit is back where it came from
    assert ledger_invariant_errors(customer.pk) == []
    reconcile(django_capture_on_commit_callbacks)  # and is carried on again: to the balance
    assert Customer.objects.get(pk=customer.pk).balance == Decimal("500.00")
    assert ledger_invariant_errors(customer.pk) == []


def test_voiding_credit_that_went_to_the_balance_and_was_spent(
    customer, staff, django_capture_on_commit_callbacks
):
    january = record(customer, "JANUARY", "1500.00", staff)
    reconcile(django_capture_on_commit_callbacks)
    assert Customer.objects.get(pk=customer.pk).balance == Decimal("500.00")
    bill_run(django_capture_on_commit_callbacks, customer, "FEBRUARY")  # spends the balance
    assert live(customer, "FEBRUARY").amount == Decimal("500.00")
    assert Customer.objects.get(pk=customer.pk).balance == Decimal("0.00")

    payment_void(payment=january, actor=staff)

    assert live(customer, "FEBRUARY").amount == Decimal("0.00")
    assert ledger_invariant_errors(customer.pk) == []


def test_a_void_whose_credit_was_corrected_away_is_refused(
    customer, staff, django_capture_on_commit_callbacks
):
    january = record(customer, "JANUARY", "1500.00", staff)
    february = record(customer, "FEBRUARY", "100.00", staff)
    reconcile(django_capture_on_commit_callbacks)
    payment_update(payment=february, data={"amount": Decimal("0.00")}, actor=staff)

    with pytest.raises(FieldErrors) as refused:
        payment_void(payment=january, actor=staff)

    assert "FEBRUARY 2026" in str(refused.value.args)
    assert live(customer, "JANUARY").pk == january.pk  # nothing changed
    assert ledger_invariant_errors(customer.pk) == []


# Random sequences ------------------------------------------------------------------

AMOUNTS = st.sampled_from(["100.00", "250.50", "500.00", "1000.00", "1500.00", "0.00"])
MONTH = st.sampled_from(MONTHS)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("record"), MONTH, AMOUNTS.filter(lambda a: a != "0.00")),
        st.tuples(st.just("correct"), MONTH, AMOUNTS, st.booleans()),
        st.tuples(st.just("void"), MONTH),
        st.tuples(st.just("bill_run"), MONTH),
        st.tuples(st.just("reconcile")),
    ),
    min_size=1,
    max_size=12,
)


class Rollback(Exception):
    """Ends one example and undoes what it wrote."""


def _apply(operation, customer, staff, capture, step):
    name, *args = operation
    found = Payment.objects.filter(customer=customer, billing_year=YEAR, voided_at__isnull=True)
    if name == "record":
        record(customer, args[0], args[1], staff, trxid=f"R-{step}")
    elif name == "correct" and found.filter(billing_month=args[0]).exists():
        data = {"amount": Decimal(args[1])}
        if args[2]:
            data.update(payment_method=PaymentMethod.NAGAD, transaction_id=f"C-{step}")
        payment_update(payment=found.get(billing_month=args[0]), data=data, actor=staff)
    elif name == "void" and found.filter(billing_month=args[0]).exists():
        payment_void(payment=found.get(billing_month=args[0]), actor=staff)
    elif name == "bill_run":
        bill_run(capture, customer, args[0])
    elif name == "reconcile":
        reconcile(capture)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_the_invariant_holds_after_every_operation_of_any_sequence(
    operations, customer, staff, django_capture_on_commit_callbacks
):
    try:
        with transaction.atomic():
            for step, operation in enumerate(operations):
                try:
                    with transaction.atomic():
                        _apply(operation, customer, staff, django_capture_on_commit_callbacks,
                               step)
                except FieldErrors:
                    pass  # refused (a paid month, a void whose credit is gone): nothing moved
                assert ledger_invariant_errors(customer.pk) == [], (step, operations)
            raise Rollback
    except Rollback:
        pass
