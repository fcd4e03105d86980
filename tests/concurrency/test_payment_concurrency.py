"""Money stays right when many people record money on one record at once."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection

from billing.models import Collection, Customer, Package, Payment
from core.enums import UserKind
from tests.conftest import ApiClient
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _post_in_thread(user, body):
    try:
        return ApiClient().bearer(user).post("/payments", body)
    finally:
        connection.close()


def test_twenty_parallel_payments_sum_to_the_paisa():
    staff = UserFactory(kind=UserKind.STAFF)
    package = Package.objects.create(name="Big", speed_mbps=20, price=Decimal("100000.00"))
    customer = Customer.objects.create(name="Karim", package=package)
    amounts = [Decimal(f"{n}.{n:02d}") for n in range(1, 21)]
    bodies = [
        {
            "customer_id": customer.pk,
            "amount": str(amount),
            "billing_month": "MARCH",
            "billing_year": 2026,
            "payment_method": "BKASH",
            "transaction_id": f"TRX-{n}",
        }
        for n, amount in enumerate(amounts)
    ]

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda body: _post_in_thread(staff, body), bodies))

    accepted = [
        Decimal(b["amount"]) for b, r in zip(bodies, responses, strict=True) if r.status_code == 201
    ]
    assert [r.status_code for r in responses] == [201] * 20, [r.content for r in responses]
    records = Payment.objects.filter(customer=customer, voided_at__isnull=True)
    assert records.count() == 1
    record = records.get()
    assert record.amount == sum(accepted) == sum(amounts)
    assert Collection.objects.filter(payment=record).count() == 20
    assert record.paid is False


def test_parallel_payments_stop_at_settlement_and_never_double():
    staff = UserFactory(kind=UserKind.STAFF)
    package = Package.objects.create(name="Small", speed_mbps=5, price=Decimal("300.00"))
    customer = Customer.objects.create(name="Salma", package=package)
    bodies = [
        {
            "customer_id": customer.pk,
            "amount": "100.00",
            "billing_month": "APRIL",
            "billing_year": 2026,
            "payment_method": "NAGAD",
            "transaction_id": f"NG-{n}",
        }
        for n in range(20)
    ]

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda body: _post_in_thread(staff, body), bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [400] * 17
    refused = [r.json() for r in responses if r.status_code == 400]
    assert all("billing_month" in body for body in refused)
    record = Payment.objects.get(customer=customer, voided_at__isnull=True)
    assert record.amount == Decimal("300.00")
    assert record.paid is True
    assert sum(c.amount for c in record.collections.all()) == record.amount
