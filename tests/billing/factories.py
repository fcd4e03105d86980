"""Factories for the billing domain (packages, routers, customers, payment records)."""

from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from billing.models import Collection, Customer, Package, Payment, Router
from core.enums import BillingMonth, ConnectionType, PaymentMethod, RouterKind, Status
from core.timeutils import business_month


class PackageFactory(DjangoModelFactory):
    class Meta:
        model = Package

    name = factory.Sequence(lambda n: f"Home {n}")
    speed_mbps = 20
    price = Decimal("500.00")
    description = ""
    status = Status.ACTIVE


class RouterFactory(DjangoModelFactory):
    """A router record nothing listens on (the API and the admin never call it)."""

    class Meta:
        model = Router

    name = factory.Sequence(lambda n: f"router-{n}")
    kind = RouterKind.ROUTEROS_REST
    host = factory.Sequence(lambda n: f"10.{n // 250 % 250}.{n % 250}.1")
    username = "billing"
    password = "router-secret"
    status = Status.ACTIVE


class CustomerFactory(DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    phone = factory.Sequence(lambda n: f"01900{n:06d}")
    email = factory.Sequence(lambda n: f"customer{n}@example.net")
    package = factory.SubFactory(PackageFactory)
    connection_type = ConnectionType.PPPOE
    username = factory.Sequence(lambda n: f"pppoe{n}")
    password = "secret"
    is_active = True
    is_free = False
    status = Status.ACTIVE


class PaymentFactory(DjangoModelFactory):
    """A record with one ledger line for its ``amount`` (when above zero), so that
    ``amount`` is the sum of its collections as the services keep it."""

    class Meta:
        model = Payment
        skip_postgeneration_save = True

    customer = factory.SubFactory(CustomerFactory)
    billing_year = factory.LazyFunction(lambda: business_month()[0])
    billing_month = factory.LazyFunction(lambda: business_month()[1])
    bill_amount = factory.LazyAttribute(lambda o: Decimal(str(o.customer.package.price)))
    amount = Decimal("0.00")
    paid = factory.LazyAttribute(lambda o: o.amount >= o.bill_amount)
    waived = factory.LazyAttribute(lambda o: o.paid and o.amount < o.bill_amount)
    payment_method = PaymentMethod.CASH
    transaction_id = ""
    payment_date = factory.LazyFunction(timezone.now)
    entry_by = None

    @factory.post_generation
    def ledger(payment, create, extracted, **kwargs):
        if create and payment.amount > 0:
            Collection.objects.create(
                payment=payment,
                amount=payment.amount,
                payment_method=payment.payment_method,
                transaction_id=payment.transaction_id,
                payment_date=payment.payment_date or timezone.now(),
                recorded_by=payment.entry_by,
            )


def other_month(month: BillingMonth, offset: int = 1) -> BillingMonth:
    months = list(BillingMonth)
    return months[(months.index(month) + offset) % 12]
