"""Dashboard figures, each computed against data made here."""

from decimal import Decimal

import pytest

from core.enums import BillingMonth, PaymentMethod, Status
from core.timeutils import business_month
from tests.billing.factories import CustomerFactory, PackageFactory, PaymentFactory, other_month
from tests.billing.shapes import DASHBOARD_KEYS, assert_money

pytestmark = pytest.mark.django_db

EXTRA_KEYS = {"current_month", "current_year", "current_month_billed",
              "current_month_collected", "current_month_due", "collected_by_method"}


def test_empty_dashboard(admin_client):
    response = admin_client.get("/dashboard")
    assert response.status_code == 200, response.content
    body = response.json()
    assert DASHBOARD_KEYS <= set(body)
    assert set(body) - DASHBOARD_KEYS <= EXTRA_KEYS
    assert {key: body[key] for key in DASHBOARD_KEYS} == {
        "total_customers": 0,
        "active_customers": 0,
        "total_packages": 0,
        "total_payments": 0,
        "total_revenue": "0.00",
        "pending_payments": 0,
        "current_month_payments": 0,
    }


def test_figures(admin_client):
    year, month = business_month()
    last = other_month(month, -1)
    last_year = year if month != BillingMonth.JANUARY else year - 1
    package = PackageFactory(price=Decimal("500.00"))
    PackageFactory()
    PackageFactory(status=Status.REMOVED)  # not counted
    a = CustomerFactory(package=package, is_active=True)
    b = CustomerFactory(package=package, is_active=True)
    c = CustomerFactory(package=package, is_active=False)
    gone = CustomerFactory(package=package, is_active=False, status=Status.REMOVED)
    CustomerFactory(package=package, is_active=True, status=Status.INACTIVE)

    # Paid this month: 500 (a, BKASH) and a waiver of 120.50 (b, CASH).
    PaymentFactory(customer=a, billing_year=year, billing_month=month,
                   amount=Decimal("500"), payment_method=PaymentMethod.BKASH)
    PaymentFactory(customer=b, billing_year=year, billing_month=month,
                   amount=Decimal("120.50"), paid=True, payment_method=PaymentMethod.CASH)
    # Paid last month: 600 (overpaid).
    PaymentFactory(customer=a, billing_year=last_year, billing_month=last,
                   amount=Decimal("600"))
    # Unpaid: c this month with 100 collected, b last month with nothing.
    PaymentFactory(customer=c, billing_year=year, billing_month=month, amount=Decimal("100"))
    PaymentFactory(customer=b, billing_year=last_year, billing_month=last)
    # Voided: left out of every figure.
    PaymentFactory(customer=c, billing_year=last_year, billing_month=last,
                   amount=Decimal("500"), voided_at="2026-01-01T00:00:00Z")
    PaymentFactory(customer=gone, billing_year=year, billing_month=month, amount=Decimal("0"),
                   voided_at="2026-01-01T00:00:00Z")

    response = admin_client.get("/dashboard")

    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: body[key] for key in DASHBOARD_KEYS} == {
        "total_customers": 4,  # a, b, c and the INACTIVE one; not the REMOVED one
        "active_customers": 3,  # a, b and the INACTIVE-status one with is_active
        "total_packages": 2,
        "total_payments": 3,
        "total_revenue": "1220.50",  # 500 + 120.50 + 600
        "pending_payments": 2,
        "current_month_payments": 2,
    }
    assert_money(body["total_revenue"])
    # The extras are consistent with the same data.
    assert body["current_month"] == month
    assert body["current_year"] == year
    assert body["current_month_billed"] == "1500.00"
    assert body["current_month_collected"] == "720.50"
    assert body["current_month_due"] == "779.50"
    assert body["collected_by_method"]["BKASH"] == "500.00"
    assert body["collected_by_method"]["CASH"] == "220.50"
    assert set(body["collected_by_method"]) == set(PaymentMethod.values)
    for value in body["collected_by_method"].values():
        assert_money(value)


def test_figures_follow_the_api(admin_client):
    """The same figures move when money is recorded and voided through the API."""
    year, month = business_month()
    customer = CustomerFactory(package=PackageFactory(price=Decimal("400")))
    body = {"customer_id": customer.id, "amount": "150", "billing_month": month,
            "payment_method": "CASH"}

    created = admin_client.post("/payments", body).json()
    dash = admin_client.get("/dashboard").json()
    assert (dash["pending_payments"], dash["total_payments"], dash["total_revenue"]) == (
        1, 0, "0.00")

    admin_client.post("/payments", {**body, "amount": "250.25"})
    dash = admin_client.get("/dashboard").json()
    assert (dash["pending_payments"], dash["total_payments"], dash["total_revenue"],
            dash["current_month_payments"]) == (0, 1, "400.25", 1)

    assert admin_client.delete(f"/payments/{created['uid']}").status_code == 204
    dash = admin_client.get("/dashboard").json()
    assert (dash["pending_payments"], dash["total_payments"], dash["total_revenue"],
            dash["current_month_payments"]) == (0, 0, "0.00", 0)


def test_cached_figures_follow_every_write(client_as):
    client, staff = client_as("MANAGER")
    year, month = business_month()
    package = PackageFactory(price=Decimal("300.00"))
    customer = CustomerFactory(package=package)
    before = client.get("/dashboard").json()
    assert (before["total_customers"], before["total_payments"]) == (1, 0)

    created = client.post("/payments", {
        "customer_id": customer.pk, "amount": "300.00", "billing_month": month,
        "billing_year": year, "payment_method": "CASH",
    })
    assert created.status_code == 201
    after_payment = client.get("/dashboard").json()
    assert (after_payment["total_payments"], after_payment["total_revenue"]) == (1, "300.00")
    assert after_payment["current_month_payments"] == 1

    assert client.delete(f"/payments/{created.json()['uid']}").status_code == 204
    after_void = client.get("/dashboard").json()
    assert (after_void["total_payments"], after_void["total_revenue"]) == (0, "0.00")

    assert client.delete(f"/customers/{customer.uid}").status_code == 204
    assert client.get("/dashboard").json()["total_customers"] == 0
