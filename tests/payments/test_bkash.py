"""bKash Tokenized Checkout against the fake bKash (tests/payments/fake_bkash.py): the
token's life, a payment from the pay page to the ledger, and every way the way back can
break (a lost execute answer, a hanging bKash, a closed tab, a failure, a cancel, a
wrong amount), the signed SNS webhook, and refunds."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.test import Client
from django.utils import timezone

from billing.ledger import ledger_invariant_errors
from billing.models import Collection, Customer, OnlinePayment, Payment
from billing.online_payments import (
    ProviderDown,
    online_payment_check,
    online_payment_refund,
    online_payment_refund_settle,
    online_payment_returned,
    online_payment_start,
)
from billing.pay_links import pay_link
from core.enums import OnlineState, UserKind
from core.errors import FieldErrors
from tests.factories import UserFactory
from tests.payments.fake_bkash import FakeBkash
from tests.payments.helpers import (
    assert_credited,
    collections,
    come_back,
    customer_owing,
    local,
)

pytestmark = pytest.mark.django_db
State = OnlineState
WEBHOOK = "/pay/webhooks/bkash"


def assert_credited_once(online: OnlinePayment, bkash: FakeBkash) -> None:
    assert_credited(online, bkash.payments[online.provider_payment_id].trx_id)


def started(customer: Customer) -> OnlinePayment:
    online = online_payment_start(customer=customer, provider="BKASH")
    assert online.state == State.REDIRECTED
    return online


# A payment from start to credit --------------------------------------------------------


def test_a_payment_from_the_pay_page_to_the_ledger(bkash):
    customer = customer_owing("500.00", "700.00")
    page = Client().get(local(pay_link(customer)))
    assert page.status_code == 200 and b"1200.00" in page.content
    answer = Client().post(local(pay_link(customer)) + "/start", {"provider": "BKASH"})
    assert answer.status_code == 302
    online = OnlinePayment.objects.get(customer=customer)
    assert answer["Location"] == online.redirect_url
    assert online.redirect_url == f"{bkash.root_url}/checkout/{online.provider_payment_id}"
    checkout = requests.get(online.redirect_url, timeout=5)
    assert "1200.00 BDT" in checkout.text and online.invoice_number in checkout.text
    assert bkash.payments[online.provider_payment_id].invoice == online.invoice_number
    back = come_back(bkash.customer_pays(online.provider_payment_id))
    assert back.status_code == 302 and f"/result/{online.uid}" in back["Location"]
    assert_credited_once(online, bkash)
    assert [line.payment.billing_month for line in collections(online)] == ["MARCH", "APRIL"]
    result = Client().get(back["Location"])
    assert online.transaction_id.encode() in result.content
    # The customer reloads the return page, bKash's redirect arrives twice: nothing more.
    come_back(bkash.customer_pays(online.provider_payment_id))
    assert_credited_once(online, bkash)
    assert bkash.calls.count("/execute") == 1


def test_the_app_starts_a_payment_that_comes_back_to_the_pay_page(bkash):
    customer = customer_owing("500.00")
    online = started(customer)
    callback = bkash.payments[online.provider_payment_id].callback_url
    assert callback == f"{pay_link(customer)}/return/{online.uid}"
    assert come_back(bkash.customer_pays(online.provider_payment_id)).status_code == 302
    assert_credited_once(online, bkash)


# The token -------------------------------------------------------------------------


def test_the_grant_token_is_asked_once_and_reused(bkash):
    for _ in range(3):
        started(customer_owing("500.00"))
    assert bkash.calls.count("/token/grant") == 1
    assert bkash.calls.count("/create") == 3


def test_a_token_about_to_expire_is_refreshed_not_granted_again(bkash):
    bkash.token_lifetime = 200  # inside the 300 s margin: stale at once
    started(customer_owing("500.00"))
    started(customer_owing("500.00"))
    assert bkash.calls[:2] == ["/token/grant", "/create"]
    assert bkash.calls[2:] == ["/token/refresh", "/create"]


def test_a_token_bkash_no_longer_takes_is_replaced_once(bkash):
    started(customer_owing("500.00"))
    bkash.expire_tokens()
    started(customer_owing("500.00"))
    assert bkash.calls == ["/token/grant", "/create", "/create", "/token/grant", "/create"]


def test_wrong_credentials_are_a_clear_400_and_the_row_failed(bkash, settings):
    settings.BKASH_APP_SECRET = "not-the-secret"
    customer = customer_owing("500.00")
    with pytest.raises(FieldErrors) as refused:
        online_payment_start(customer=customer, provider="BKASH")
    assert "provider" in refused.value.body
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == State.FAILED and "token grant" in online.error
    assert "not-the-secret" not in json.dumps(list(online.events.values_list("data", flat=True)))


def test_bkash_down_at_create_is_provider_down_and_the_row_failed(bkash):
    bkash.fail_next(1, status=503)
    customer = customer_owing("500.00")
    with pytest.raises(ProviderDown):
        online_payment_start(customer=customer, provider="BKASH")
    assert OnlinePayment.objects.get(customer=customer).state == State.FAILED


# The way back breaks -----------------------------------------------------------------------


def test_an_execute_whose_answer_is_lost_is_credited_from_the_status_query(bkash):
    online = started(customer_owing("500.00"))
    bkash.drop_execute_answer = True
    come_back(bkash.customer_pays(online.provider_payment_id))
    assert_credited_once(online, bkash)
    assert bkash.payments[online.provider_payment_id].executions == 1
    assert bkash.calls[-1] == "/payment/status"


def test_a_hanging_bkash_leaves_the_payment_open_and_the_sweep_credits_it(bkash, settings):
    settings.BKASH_TIMEOUT_SECONDS = 0.5
    online = started(customer_owing("500.00"))
    url = bkash.customer_pays(online.provider_payment_id)
    bkash.hanging = True
    back = come_back(url)
    assert back.status_code == 302  # to the result page, which waits
    waiting = Client().get(back["Location"])
    assert waiting.status_code == 200 and b'http-equiv="refresh"' in waiting.content
    online.refresh_from_db()
    assert online.state == State.REDIRECTED and not collections(online)
    online_payment_check(online_payment_id=online.pk)  # still hanging: asked again later
    assert OnlinePayment.objects.get(pk=online.pk).state == State.REDIRECTED
    bkash.recover()
    online_payment_check(online_payment_id=online.pk)
    assert_credited_once(online, bkash)


def test_a_customer_who_closed_the_tab_after_paying_is_credited_by_the_sweep(bkash):
    online = started(customer_owing("500.00"))
    bkash.customer_pays(online.provider_payment_id)  # approved; the redirect never arrives
    online_payment_check(online_payment_id=online.pk)
    assert_credited_once(online, bkash)


def test_a_payment_not_yet_approved_stays_open_then_expires_and_a_late_success_counts(bkash):
    online = started(customer_owing("500.00"))
    online_payment_check(online_payment_id=online.pk)
    online.refresh_from_db()
    assert online.state == State.REDIRECTED and not collections(online)
    OnlinePayment.objects.filter(pk=online.pk).update(expires_at=timezone.now()
                                                      - timedelta(seconds=1))
    online_payment_check(online_payment_id=online.pk)
    online.refresh_from_db()
    assert online.state == State.EXPIRED
    come_back(bkash.customer_pays(online.provider_payment_id))  # they paid after all
    assert_credited_once(online, bkash)


@pytest.mark.parametrize("outcome, state", [("failure", State.FAILED),
                                            ("cancel", State.CANCELLED)])
def test_a_failure_or_cancel_at_bkash_credits_nothing(bkash, outcome, state):
    customer = customer_owing("500.00")
    online = started(customer)
    come_back(bkash.customer_pays(online.provider_payment_id, outcome))
    online.refresh_from_db()
    assert online.state == state and not collections(online)
    assert "/execute" not in bkash.calls
    assert not Payment.objects.get(customer=customer).paid


def test_a_forged_success_redirect_credits_nothing(bkash):
    """Anyone can type ?status=success: only bKash's execute answer counts."""
    customer = customer_owing("500.00")
    online = started(customer)
    come_back(f"{bkash.payments[online.provider_payment_id].callback_url}"
              f"?paymentID={online.provider_payment_id}&status=success")
    online.refresh_from_db()
    assert online.state == State.FAILED and not collections(online)
    assert not Payment.objects.get(customer=customer).paid


def test_a_callback_for_another_payment_is_refused(bkash):
    online = started(customer_owing("500.00"))
    with pytest.raises(FieldErrors):
        online_payment_returned(online_payment=online,
                                callback={"paymentID": "TR0011OTHER", "status": "success"})
    assert come_back(f"{bkash.payments[online.provider_payment_id].callback_url}"
                     "?paymentID=TR0011OTHER&status=success").status_code == 404


def test_a_completed_payment_for_another_amount_is_not_credited(bkash):
    online = started(customer_owing("500.00"))
    bkash.report_amount = "5.00"
    come_back(bkash.customer_pays(online.provider_payment_id))
    online.refresh_from_db()
    assert online.state == State.FAILED and "not credited" in online.error
    assert not collections(online)


# The webhook (Amazon SNS) -------------------------------------------------------------------


def post_webhook(message: dict):
    return Client().post(WEBHOOK, data=json.dumps(message), content_type="text/plain")


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_webhook_credits_a_payment_whose_customer_never_came_back(bkash, version):
    online = started(customer_owing("500.00"))
    bkash.customer_pays(online.provider_payment_id)
    bkash.complete(online.provider_payment_id)  # executed by an earlier, lost, attempt
    message = bkash.sns_notification(online.provider_payment_id, version=version)
    assert post_webhook(message).status_code == 200
    assert_credited_once(online, bkash)
    assert post_webhook(message).status_code == 200  # SNS delivers at least once
    assert_credited_once(online, bkash)
    asked = list(bkash.calls)
    come_back(bkash.customer_pays(online.provider_payment_id))  # the redirect, after it
    assert_credited_once(online, bkash)
    assert bkash.calls == asked  # nothing more to ask bKash


def test_a_webhook_through_http_to_a_running_server(bkash, live_server, settings):
    online = started(customer_owing("500.00"))
    bkash.customer_pays(online.provider_payment_id)
    bkash.complete(online.provider_payment_id)
    answer = bkash.send_webhook(f"{live_server.url}{WEBHOOK}",
                                bkash.sns_notification(online.provider_payment_id))
    assert answer.status_code == 200, answer.text
    assert_credited_once(online, bkash)


def test_tampered_foreign_and_unsigned_webhooks_are_400_and_credit_nothing(bkash):
    online = started(customer_owing("500.00"))
    bkash.customer_pays(online.provider_payment_id)
    bkash.complete(online.provider_payment_id)
    genuine = bkash.sns_notification(online.provider_payment_id)
    tampered = {**genuine, "Message": genuine["Message"].replace('"500.00"', '"50000.00"')}
    impostor = FakeBkash().start()  # its own key, but naming the real certificate
    try:
        impostor.payments = bkash.payments
        foreign_key = {**impostor.sns_notification(online.provider_payment_id),
                       "SigningCertURL": genuine["SigningCertURL"]}
        foreign_host = {**genuine, "SigningCertURL": "https://evil.example.com/cert.pem"}
    finally:
        impostor.stop()
    unsigned = {key: value for key, value in genuine.items() if key != "Signature"}
    for message in (tampered, foreign_key, foreign_host, unsigned):
        assert post_webhook(message).status_code == 400, message
    for junk in (b"", b"not json", b"[]", b'{"Type": "Notification"}', b"\xff\xfe"):
        assert Client().post(WEBHOOK, data=junk, content_type="text/plain").status_code == 400
    online.refresh_from_db()
    assert online.state == State.REDIRECTED and not collections(online)


def test_the_sns_subscription_is_confirmed(bkash):
    assert post_webhook(bkash.subscription_confirmation()).status_code == 200
    assert bkash.subscribed == 1


# Refunds -----------------------------------------------------------------------------------


def paid_online(bkash, *amounts) -> OnlinePayment:
    online = started(customer_owing(*amounts))
    come_back(bkash.customer_pays(online.provider_payment_id))
    online.refresh_from_db()
    assert online.state == State.SUCCEEDED
    return online


def test_a_partial_then_a_full_refund_through_the_api(bkash, admin_client):
    online = paid_online(bkash, "500.00", "300.00")
    first = admin_client.post(f"/online-payments/{online.uid}/refund", {"amount": "200.00"})
    assert first.status_code == 200, first.json()
    assert first.json()["state"] == "SUCCEEDED"
    fake = bkash.payments[online.provider_payment_id]
    assert [refund["amount"] for refund in fake.refunds] == ["200.00"]
    rest = admin_client.post(f"/online-payments/{online.uid}/refund", {})
    assert rest.status_code == 200 and rest.json()["state"] == "REFUNDED"
    assert [refund["amount"] for refund in fake.refunds] == ["200.00", "600.00"]
    refunds = Collection.objects.filter(online_payment=online, kind=Collection.Kind.REFUND)
    assert sum(line.amount for line in refunds) == Decimal("-800.00")
    assert not Payment.objects.filter(customer=online.customer, paid=True).exists()
    assert ledger_invariant_errors(online.customer_id) == []
    again = admin_client.post(f"/online-payments/{online.uid}/refund", {})
    assert again.status_code == 400 and len(fake.refunds) == 2


@pytest.mark.parametrize("amount", ["0", "-1", "800.01", "abc", "12.345", 800.5, "NaN"])
def test_a_refund_outside_what_was_paid_is_400_and_nothing_moves(bkash, admin_client, amount):
    online = paid_online(bkash, "500.00", "300.00")
    answer = admin_client.post(f"/online-payments/{online.uid}/refund", {"amount": amount})
    assert answer.status_code == 400, answer.json()
    assert bkash.payments[online.provider_payment_id].refunds == []
    assert not Collection.objects.filter(online_payment=online,
                                         kind=Collection.Kind.REFUND).exists()


def test_a_refund_bkash_never_answered_is_held_until_a_person_settles_it(bkash,
                                                                       admin_client):
    """No answer may mean it was made: asking again could refund twice."""
    online = paid_online(bkash, "500.00")
    bkash.fail_next(1, status=502)
    down = admin_client.post(f"/online-payments/{online.uid}/refund", {})
    assert down.status_code == 503
    online.refresh_from_db()
    assert (online.refunded_amount, online.refund_unanswered) == (Decimal("500.00"),) * 2
    assert "no answer" in online.error and online.state == State.SUCCEEDED
    again = admin_client.post(f"/online-payments/{online.uid}/refund", {"amount": "1.00"})
    assert again.status_code == 400 and "no answer" in json.dumps(again.json())
    assert bkash.payments[online.provider_payment_id].refunds == []
    # Checked in bKash's portal: it was not made. Given back, and a refund goes through.
    online_payment_refund_settle(online_payment=online, made=False,
                                 actor=UserFactory(kind=UserKind.ADMIN))
    online.refresh_from_db()
    assert (online.refunded_amount, online.refund_unanswered) == (0, 0)
    assert not any(line.amount < 0 for line in collections(online))
    done = admin_client.post(f"/online-payments/{online.uid}/refund", {})
    assert done.status_code == 200 and done.json()["state"] == "REFUNDED"
    assert len(bkash.payments[online.provider_payment_id].refunds) == 1


def test_an_unanswered_refund_the_provider_made_is_written_when_settled(bkash):
    online = paid_online(bkash, "500.00")
    bkash.hanging = True  # the answer never comes; whether bKash made it, a person checks
    with pytest.raises(ProviderDown):
        online_payment_refund(online_payment=online, amount=Decimal("200.00"),
                              actor=UserFactory(kind=UserKind.ADMIN))
    bkash.recover()
    online_payment_refund_settle(online_payment=online, made=True,
                                 actor=UserFactory(kind=UserKind.ADMIN))
    online.refresh_from_db()
    assert (online.refunded_amount, online.refund_unanswered) == (Decimal("200.00"), 0)
    refunds = [line for line in collections(online) if line.amount < 0]
    assert [line.amount for line in refunds] == [Decimal("-200.00")]
    assert refunds[0].transaction_id == f"CHECKED-{online.invoice_number}"
    assert ledger_invariant_errors(online.customer_id) == []
    with pytest.raises(FieldErrors):  # nothing awaits an answer now
        online_payment_refund_settle(online_payment=online, made=True,
                                     actor=UserFactory(kind=UserKind.ADMIN))