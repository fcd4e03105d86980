"""SSLCommerz against the fake SSLCommerz (tests/payments/fake_sslcommerz.py): a payment
from the pay page to the ledger through the customer's form POST back, the IPN as the
second path (validated, never believed), and every way it can go wrong: a forged
return or IPN, a risky or short payment, a failure, a cancel, a hanging SSLCommerz, a
closed tab, wrong credentials; and refunds."""

import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import requests
from django.test import Client

from billing.models import OnlinePayment, Payment
from billing.online_payments import (
    ProviderDown,
    online_payment_check,
    online_payment_start,
)
from billing.pay_links import pay_link
from core.enums import OnlineState
from core.errors import FieldErrors
from tests.payments.fake_sslcommerz import FakeSslcommerz
from tests.payments.helpers import (
    assert_credited,
    assert_not_credited,
    collections,
    customer_owing,
    local,
)

pytestmark = pytest.mark.django_db
State = OnlineState
IPN = "/pay/webhooks/sslcommerz"


def started(customer) -> OnlinePayment:
    online = online_payment_start(customer=customer, provider="SSLCOMMERZ")
    assert online.state == State.REDIRECTED
    return online


def post_back(url: str, fields: dict):
    """SSLCommerz's page posts the customer's browser back to us (no CSRF token)."""
    return Client(enforce_csrf_checks=True).post(local(url), fields)


def post_ipn(fields: dict | bytes):
    """SSLCommerz's IPN: a form POST (application/x-www-form-urlencoded)."""
    body = fields if isinstance(fields, bytes) else urlencode(fields)
    return Client().post(IPN, body, content_type="application/x-www-form-urlencoded")


def bank_tran_id(fake: FakeSslcommerz, online: OnlinePayment) -> str:
    return fake.sessions[online.provider_payment_id].bank_tran_id


def test_a_payment_from_the_pay_page_to_the_ledger(sslcommerz, settings):
    customer = customer_owing("500.00", "700.00")
    answer = Client().post(local(pay_link(customer)) + "/start", {"provider": "SSLCOMMERZ"})
    assert answer.status_code == 302
    online = OnlinePayment.objects.get(customer=customer)
    assert answer["Location"] == online.redirect_url == \
        f"{sslcommerz.root_url}/gw/{online.provider_payment_id}"
    session = sslcommerz.sessions[online.provider_payment_id]
    assert (session.tran_id, session.amount, session.currency) == \
        (online.invoice_number, "1200.00", "BDT")
    assert session.success_url == session.fail_url == session.cancel_url == \
        f"{pay_link(customer)}/return/{online.uid}"
    assert session.ipn_url == f"{settings.PUBLIC_BASE_URL}{IPN}"
    assert "1200.00 BDT" in requests.get(online.redirect_url, timeout=5).text

    back = post_back(*sslcommerz.customer_pays(online.provider_payment_id))
    assert back.status_code == 302 and f"/result/{online.uid}" in back["Location"]
    assert_credited(online, bank_tran_id(sslcommerz, online))
    assert [line.payment.billing_month for line in collections(online)] == ["MARCH", "APRIL"]
    assert online.transaction_id.encode() in Client().get(back["Location"]).content
    assert sslcommerz.sessions[online.provider_payment_id].validations == 1
    # The IPN arrives too, twice, and the customer posts back again: nothing more.
    for _ in range(2):
        assert post_ipn(sslcommerz.ipn(online.provider_payment_id)).status_code == 200
    post_back(*sslcommerz.customer_pays(online.provider_payment_id))
    assert_credited(online, bank_tran_id(sslcommerz, online))
    assert len(collections(online)) == 2


def test_an_ipn_credits_a_payment_whose_customer_never_came_back(sslcommerz, live_server,
                                                                 settings):
    settings.PUBLIC_BASE_URL = live_server.url
    online = started(customer_owing("500.00"))
    sslcommerz.customer_pays(online.provider_payment_id)  # paid; the tab is closed
    # Over real HTTP, as SSLCommerz posts it, to the URL the session was given.
    assert sslcommerz.send_ipn(online.provider_payment_id).status_code == 200
    assert_credited(online, bank_tran_id(sslcommerz, online))


def test_a_customer_who_closed_the_tab_is_credited_by_the_sweep(sslcommerz):
    online = started(customer_owing("500.00"))
    sslcommerz.customer_pays(online.provider_payment_id)
    online_payment_check(online_payment_id=online.pk)
    assert_credited(online, bank_tran_id(sslcommerz, online))


def test_a_forged_return_that_says_valid_credits_nothing(sslcommerz):
    """Anyone can post status=VALID and a made-up val_id: only SSLCommerz's answers count."""
    customer = customer_owing("500.00")
    online = started(customer)
    url = f"{pay_link(customer)}/return/{online.uid}"
    post_back(url, {"status": "VALID", "tran_id": online.invoice_number,
                    "val_id": "FORGED123", "amount": "500.00", "bank_tran_id": "FORGED"})
    assert_not_credited(online, State.REDIRECTED)
    assert sslcommerz.calls == ["/gwprocess/v4/api.php",
                                "/validator/api/merchantTransIDvalidationAPI.php"]


def test_a_return_for_another_payment_is_refused(sslcommerz):
    customer = customer_owing("500.00")
    online = started(customer)
    back = post_back(f"{pay_link(customer)}/return/{online.uid}",
                     {"status": "VALID", "tran_id": "SOMEONE-ELSE"})
    assert back.status_code == 404
    assert_not_credited(online, State.REDIRECTED)


def test_a_forged_or_foreign_ipn_is_400_and_credits_nothing(sslcommerz):
    online = started(customer_owing("500.00"))
    forged = post_ipn({"status": "VALID", "tran_id": online.invoice_number,
                       "val_id": "NOT-A-VAL-ID", "amount": "500.00"})
    assert forged.status_code == 400
    assert post_ipn({"status": "VALID"}).status_code == 400
    assert post_ipn(b"\xff\xfe").status_code == 400
    assert_not_credited(online, State.REDIRECTED)


def test_an_ipn_for_a_failed_payment_changes_nothing_until_sslcommerz_says_so(sslcommerz):
    online = started(customer_owing("500.00"))
    sslcommerz.customer_pays(online.provider_payment_id, "fail")
    ipn = sslcommerz.ipn(online.provider_payment_id)
    assert ipn["status"] == "FAILED" and not ipn["val_id"]
    assert post_ipn(ipn).status_code == 200
    assert_not_credited(online, State.REDIRECTED)
    online_payment_check(online_payment_id=online.pk)  # the sweep asks SSLCommerz
    assert_not_credited(online, State.FAILED)


@pytest.mark.parametrize("outcome, state", [("fail", State.FAILED),
                                            ("cancel", State.CANCELLED)])
def test_a_failure_or_cancel_credits_nothing(sslcommerz, outcome, state):
    online = started(customer_owing("500.00"))
    post_back(*sslcommerz.customer_pays(online.provider_payment_id, outcome))
    assert_not_credited(online, state)


def test_a_risky_payment_is_held_for_a_person(sslcommerz):
    sslcommerz.risky = True
    online = started(customer_owing("500.00"))
    post_back(*sslcommerz.customer_pays(online.provider_payment_id))
    assert_not_credited(online, State.FAILED)
    assert "risky" in online.error and "not credited" in online.error


def test_a_validated_payment_for_another_amount_is_not_credited(sslcommerz):
    online = started(customer_owing("500.00"))
    sslcommerz.report_amount = "50.00"
    post_back(*sslcommerz.customer_pays(online.provider_payment_id))
    assert_not_credited(online, State.FAILED)
    assert "amount 50.00 (asked 500.00)" in online.error


def test_a_hanging_sslcommerz_leaves_the_payment_open_and_the_sweep_credits_it(sslcommerz,
                                                                              settings):
    settings.SSLCOMMERZ_TIMEOUT_SECONDS = 0.5
    online = started(customer_owing("500.00"))
    url, fields = sslcommerz.customer_pays(online.provider_payment_id)
    sslcommerz.hanging = True
    back = post_back(url, fields)
    assert back.status_code == 302
    assert b'http-equiv="refresh"' in Client().get(back["Location"]).content
    assert_not_credited(online, State.REDIRECTED)
    sslcommerz.recover()
    online_payment_check(online_payment_id=online.pk)
    assert_credited(online, bank_tran_id(sslcommerz, online))


def test_wrong_credentials_are_a_clear_400_and_no_credential_is_kept(sslcommerz, settings):
    settings.SSLCOMMERZ_STORE_PASSWORD = "not-the-password"
    customer = customer_owing("500.00")
    with pytest.raises(FieldErrors) as refused:
        online_payment_start(customer=customer, provider="SSLCOMMERZ")
    assert "Store Credential Error" in refused.value.body["provider"][0]
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == State.FAILED
    assert "not-the-password" not in json.dumps(list(online.events.values_list("data", flat=True)))


def test_sslcommerz_down_at_create_is_provider_down(sslcommerz):
    sslcommerz.fail_next(1, status=502)
    customer = customer_owing("500.00")
    with pytest.raises(ProviderDown):
        online_payment_start(customer=customer, provider="SSLCOMMERZ")
    assert OnlinePayment.objects.get(customer=customer).state == State.FAILED


def test_a_partial_then_a_full_refund_through_the_api(sslcommerz, admin_client):
    customer = customer_owing("500.00")
    online = started(customer)
    post_back(*sslcommerz.customer_pays(online.provider_payment_id))
    url = f"/online-payments/{online.uid}/refund"
    first = admin_client.post(url, {"amount": "200.00"})
    assert first.status_code == 200, first.content
    assert first.json()["state"] == State.SUCCEEDED
    second = admin_client.post(url, {})
    assert second.status_code == 200 and second.json()["state"] == State.REFUNDED
    refunds = sslcommerz.sessions[online.provider_payment_id].refunds
    assert [refund["amount"] for refund in refunds] == ["200.00", "300.00"]
    lines = [line for line in collections(online) if line.amount < 0]
    assert sorted(line.amount for line in lines) == [Decimal("-300.00"), Decimal("-200.00")]
    assert not Payment.objects.get(customer=customer).paid
    again = admin_client.post(url, {})
    assert again.status_code == 400
