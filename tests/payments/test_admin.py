"""Online payments in the back office: a customer's pay link for staff to send, the
payments with every provider answer, and the refund action."""

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import OnlinePayment
from billing.online_payments import online_payment_start
from billing.pay_links import pay_link
from core.enums import OnlineState, UserKind
from tests.factories import UserFactory
from tests.payments.helpers import collections, come_back, customer_owing

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True))
    return client


def test_the_customer_page_shows_the_pay_link_when_a_provider_is_on(operator, settings):
    customer = customer_owing("500.00")
    page = operator.get(reverse("admin:billing_customer_change", args=[customer.pk]))
    assert page.status_code == 200
    assert b"No online payment provider is switched on." in page.content
    settings.SSLCOMMERZ_BASE_URL = "https://sandbox.sslcommerz.com"
    page = operator.get(reverse("admin:billing_customer_change", args=[customer.pk]))
    assert pay_link(customer).encode() in page.content


def test_a_paid_payment_is_shown_with_its_answers_and_refunded_by_the_action(operator, bkash):
    customer = customer_owing("500.00")
    online = online_payment_start(customer=customer, provider="BKASH")
    come_back(bkash.customer_pays(online.provider_payment_id))
    listing = operator.get(reverse("admin:billing_onlinepayment_changelist"))
    assert listing.status_code == 200 and online.invoice_number.encode() in listing.content
    detail = operator.get(reverse("admin:billing_onlinepayment_change", args=[online.pk]))
    assert detail.status_code == 200 and b"CONFIRM" in detail.content

    answer = operator.post(reverse("admin:billing_onlinepayment_changelist"), {
        "action": "refund_in_full", "_selected_action": [online.pk]}, follow=True)
    assert answer.status_code == 200 and b"refunded." in answer.content
    online.refresh_from_db()
    assert online.state == OnlineState.REFUNDED
    assert sum(line.amount for line in collections(online)) == 0
    again = operator.post(reverse("admin:billing_onlinepayment_changelist"), {
        "action": "refund_in_full", "_selected_action": [online.pk]}, follow=True)
    assert b"not refunded" in again.content
    assert len(bkash.payments[online.provider_payment_id].refunds) == 1


def test_a_nagad_refund_from_the_admin_says_why_not(operator, nagad):
    online = online_payment_start(customer=customer_owing("500.00"), provider="NAGAD")
    come_back(nagad.customer_pays(online.provider_payment_id))
    answer = operator.post(reverse("admin:billing_onlinepayment_changelist"), {
        "action": "refund_in_full", "_selected_action": [online.pk]}, follow=True)
    assert b"merchant portal" in answer.content
    assert OnlinePayment.objects.get(pk=online.pk).state == OnlineState.SUCCEEDED


def test_an_unanswered_refund_is_settled_from_the_admin(operator, bkash):
    online = online_payment_start(customer=customer_owing("500.00"), provider="BKASH")
    come_back(bkash.customer_pays(online.provider_payment_id))
    bkash.fail_next(1, status=504)
    operator.post(reverse("admin:billing_onlinepayment_changelist"), {
        "action": "refund_in_full", "_selected_action": [online.pk]}, follow=True)
    online.refresh_from_db()
    assert online.refund_unanswered == online.amount
    listing = operator.post(reverse("admin:billing_onlinepayment_changelist"), {
        "action": "unanswered_refund_not_made", "_selected_action": [online.pk]}, follow=True)
    assert b"settled." in listing.content
    online.refresh_from_db()
    assert (online.refunded_amount, online.refund_unanswered) == (0, 0)
    assert online.state == OnlineState.SUCCEEDED
