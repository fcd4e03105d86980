"""What the providers' tests share: a customer who owes, and the customer's way back."""

import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from django.test import Client

from billing.ledger import ledger_invariant_errors
from billing.models import Collection, Customer, OnlinePayment, Package, Payment
from core.enums import OnlineState


def customer_owing(*amounts: str) -> Customer:
    package = Package.objects.create(name=f"P{uuid.uuid4().hex[:6]}", speed_mbps=10,
                                     price=Decimal(amounts[0]))
    customer = Customer.objects.create(name="Karim", phone=f"018{uuid.uuid4().int % 10**8:08d}",
                                       package=package)
    for month, amount in zip(["MARCH", "APRIL", "MAY"], amounts, strict=False):
        Payment.objects.create(customer=customer, billing_year=2026, billing_month=month,
                               bill_amount=Decimal(amount))
    return customer


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def come_back(url: str):
    """The customer's browser follows bKash's redirect to our pay page."""
    return Client().get(local(url))


def collections(online: OnlinePayment) -> list[Collection]:
    return list(Collection.objects.filter(online_payment=online).order_by("pk"))


def assert_credited(online: OnlinePayment, transaction_id: str) -> None:
    """SUCCEEDED, its amount on the bills once, as ``transaction_id``; the bills paid."""
    online.refresh_from_db()
    assert online.state == OnlineState.SUCCEEDED, (online.state, online.error)
    lines = collections(online)
    assert sum(line.amount for line in lines) == online.amount
    assert {line.transaction_id for line in lines} == {transaction_id}
    assert online.transaction_id == transaction_id
    assert all(Payment.objects.get(pk=line.payment_id).paid for line in lines)
    assert ledger_invariant_errors(online.customer_id) == []


def assert_not_credited(online: OnlinePayment, state: str) -> None:
    online.refresh_from_db()
    assert online.state == state, (online.state, online.error)
    assert not collections(online)
    assert not Payment.objects.filter(pk__in=online.payments.values("pk"), paid=True).exists()
