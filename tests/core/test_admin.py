"""The back office: every model's admin pages open for an operator."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from billing.models import Collection, Customer, Package, Payment
from core.enums import UserKind
from tests.factories import UserFactory


@pytest.fixture
def operator(db):
    user = UserFactory(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_changelist_and_add_pages_open(operator, model):
    opts = model._meta
    changelist = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert changelist.status_code == 200
    add = operator.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    assert add.status_code in (200, 403)


def test_payments_are_voided_not_deleted(operator):
    package = Package.objects.create(name="P", speed_mbps=5, price="500.00")
    customer = Customer.objects.create(name="C", package=package)
    payment = Payment.objects.create(
        customer=customer, billing_year=2026, billing_month="MAY", bill_amount="500.00"
    )
    url = reverse("admin:billing_payment_changelist")
    response = operator.post(
        url, {"action": "void_selected", "_selected_action": [payment.pk]}, follow=True
    )
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.voided_at is not None
    assert Payment.objects.filter(pk=payment.pk).exists()
    assert (
        operator.get(reverse("admin:billing_payment_delete", args=[payment.pk])).status_code == 403
    )
    assert Collection.objects.count() == 0
