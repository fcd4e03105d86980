"""Nagad against the fake Nagad (tests/payments/fake_nagad.py): the signed and encrypted
initialize and complete calls, a payment from the pay page to the ledger confirmed by the
verify call, and every way it can go wrong: answers not signed by Nagad, a forged
return, a failure, a cancel, a hanging Nagad, a closed tab, a different amount or
merchant; refunds refused clearly."""

import base64
import json
from datetime import timedelta

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from django.test import Client
from django.utils import timezone

from billing.models import OnlinePayment
from billing.online_payments import (
    RECHECK_EVERY,
    RECHECK_WINDOW,
    ProviderDown,
    online_payment_check,
    online_payment_start,
    online_payments_sweep,
)
from billing.pay_links import pay_link
from core.enums import OnlineState
from core.errors import FieldErrors
from tests.payments.fake_nagad import FakeNagad
from tests.payments.helpers import (
    assert_credited,
    assert_not_credited,
    collections,
    come_back,
    customer_owing,
    local,
)

pytestmark = pytest.mark.django_db
State = OnlineState


def started(customer) -> OnlinePayment:
    online = online_payment_start(customer=customer, provider="NAGAD")
    assert online.state == State.REDIRECTED
    return online


def issuer_ref(nagad: FakeNagad, online: OnlinePayment) -> str:
    return nagad.payments[online.provider_payment_id].issuer_ref


def test_a_payment_from_the_pay_page_to_the_ledger(nagad):
    customer = customer_owing("500.00", "700.00")
    answer = Client().post(local(pay_link(customer)) + "/start", {"provider": "NAGAD"})
    assert answer.status_code == 302
    online = OnlinePayment.objects.get(customer=customer)
    assert answer["Location"] == online.redirect_url == \
        f"{nagad.root_url}/checkout/{online.provider_payment_id}"
    # The fake took our sealed fields only because they decrypted and verified.
    payment = nagad.payments[online.provider_payment_id]
    assert (payment.order_id, payment.amount) == (online.invoice_number, "1200.00")
    assert payment.callback_url == f"{pay_link(customer)}/return/{online.uid}"
    assert "1200.00 BDT" in requests.get(online.redirect_url, timeout=5).text

    back = come_back(nagad.customer_pays(online.provider_payment_id))
    assert back.status_code == 302 and f"/result/{online.uid}" in back["Location"]
    assert_credited(online, issuer_ref(nagad, online))
    assert [line.payment.billing_month for line in collections(online)] == ["MARCH", "APRIL"]
    assert online.transaction_id.encode() in Client().get(back["Location"]).content
    # A reload of the return page: verified again, credited no more.
    come_back(nagad.customer_pays(online.provider_payment_id))
    assert_credited(online, issuer_ref(nagad, online))
    assert nagad.calls[:2] == [f"/check-out/initialize/{nagad.merchant_id}/"
                               f"{online.invoice_number}",
                               f"/check-out/complete/{online.provider_payment_id}"]


def test_keys_are_taken_as_pem_or_bare_base64(nagad, settings):
    """Nagad hands keys out as bare base64; operators paste PEM, sometimes with \\n."""
    key = serialization.load_pem_private_key(settings.NAGAD_MERCHANT_PRIVATE_KEY.encode(), None)
    settings.NAGAD_MERCHANT_PRIVATE_KEY = base64.b64encode(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode()
    started(customer_owing("500.00"))
    public = serialization.load_der_public_key(base64.b64decode(settings.NAGAD_PUBLIC_KEY))
    settings.NAGAD_PUBLIC_KEY = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ).decode().replace("\n", "\\n")
    started(customer_owing("500.00"))


def test_an_answer_not_signed_by_nagad_is_refused(nagad):
    nagad.forge_answers = True
    customer = customer_owing("500.00")
    with pytest.raises(FieldErrors) as refused:
        online_payment_start(customer=customer, provider="NAGAD")
    assert "not signed by Nagad" in refused.value.body["provider"][0]
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == State.FAILED and not online.provider_payment_id
    assert not any("/complete/" in call for call in nagad.calls)


def test_a_wrong_merchant_key_is_refused_by_nagad_and_kept_nowhere(nagad, settings):
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.NAGAD_MERCHANT_PRIVATE_KEY = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    customer = customer_owing("500.00")
    with pytest.raises(FieldErrors) as refused:
        online_payment_start(customer=customer, provider="NAGAD")
    assert "Invalid signature" in refused.value.body["provider"][0]
    events = json.dumps(list(OnlinePayment.objects.get(customer=customer)
                             .events.values_list("data", flat=True)))
    assert "PRIVATE" not in events and settings.NAGAD_MERCHANT_PRIVATE_KEY[40:80] not in events


def test_a_key_setting_that_is_not_a_key_is_a_clear_400(nagad, settings):
    settings.NAGAD_PUBLIC_KEY = "not a key"
    with pytest.raises(FieldErrors) as refused:
        online_payment_start(customer=customer_owing("500.00"), provider="NAGAD")
    assert "key setting is not a key" in refused.value.body["provider"][0]


def test_nagad_down_at_create_is_provider_down(nagad):
    nagad.fail_next(1, status=503)
    customer = customer_owing("500.00")
    with pytest.raises(ProviderDown):
        online_payment_start(customer=customer, provider="NAGAD")
    assert OnlinePayment.objects.get(customer=customer).state == State.FAILED


def test_a_forged_success_return_credits_nothing(nagad):
    """Anyone can type ?status=Success: only Nagad's verify answer counts."""
    customer = customer_owing("500.00")
    online = started(customer)
    come_back(f"{pay_link(customer)}/return/{online.uid}?payment_ref_id="
              f"{online.provider_payment_id}&status=Success&issuer_payment_ref=FORGED")
    assert_not_credited(online, State.REDIRECTED)
    assert nagad.payments[online.provider_payment_id].verifications == 1


def test_a_return_for_another_payment_is_refused(nagad):
    customer = customer_owing("500.00")
    online = started(customer)
    back = come_back(f"{pay_link(customer)}/return/{online.uid}?payment_ref_id=MDAOTHER"
                     "&status=Success")
    assert back.status_code == 404
    assert nagad.payments[online.provider_payment_id].verifications == 0


@pytest.mark.parametrize("outcome, state", [("fail", State.FAILED),
                                            ("cancel", State.CANCELLED)])
def test_a_failure_or_cancel_credits_nothing(nagad, outcome, state):
    online = started(customer_owing("500.00"))
    come_back(nagad.customer_pays(online.provider_payment_id, outcome))
    assert_not_credited(online, state)


def test_a_customer_who_closed_the_tab_is_credited_by_the_sweep(nagad):
    online = started(customer_owing("500.00"))
    nagad.customer_pays(online.provider_payment_id)
    online_payment_check(online_payment_id=online.pk)
    assert_credited(online, issuer_ref(nagad, online))


def test_a_hanging_nagad_leaves_the_payment_open_and_the_sweep_credits_it(nagad, settings):
    settings.NAGAD_TIMEOUT_SECONDS = 0.5
    online = started(customer_owing("500.00"))
    url = nagad.customer_pays(online.provider_payment_id)
    nagad.hanging = True
    back = come_back(url)
    assert back.status_code == 302
    assert b'http-equiv="refresh"' in Client().get(back["Location"]).content
    assert_not_credited(online, State.REDIRECTED)
    nagad.recover()
    online_payment_check(online_payment_id=online.pk)
    assert_credited(online, issuer_ref(nagad, online))


def test_a_verified_payment_for_another_amount_is_not_credited(nagad):
    online = started(customer_owing("500.00"))
    nagad.report_amount = "5.00"
    come_back(nagad.customer_pays(online.provider_payment_id))
    assert_not_credited(online, State.FAILED)
    assert "amount 5.00 (asked 500.00)" in online.error


def test_a_verify_answer_for_another_merchant_is_not_credited(nagad, settings):
    online = started(customer_owing("500.00"))
    nagad.customer_pays(online.provider_payment_id)
    settings.NAGAD_MERCHANT_ID = "683002000000000"
    online_payment_check(online_payment_id=online.pk)
    assert_not_credited(online, State.REDIRECTED)
    assert "another merchant" in json.dumps(list(online.events.values_list("data", flat=True)))


def test_a_refund_is_refused_clearly_and_nothing_moves(nagad, admin_client):
    online = started(customer_owing("500.00"))
    come_back(nagad.customer_pays(online.provider_payment_id))
    answer = admin_client.post(f"/online-payments/{online.uid}/refund", {})
    assert answer.status_code == 400
    assert "merchant portal" in json.dumps(answer.json())
    online.refresh_from_db()
    assert online.state == State.SUCCEEDED and online.refunded_amount == 0
    assert all(line.amount > 0 for line in collections(online))


def test_a_payment_made_after_a_forged_abort_is_found_by_the_sweep_later(nagad):
    """Nagad sends no webhook: a payment that ended unpaid on our side is asked about
    again, every RECHECK_EVERY for RECHECK_WINDOW, and a late success is credited once."""
    customer = customer_owing("500.00")
    online = started(customer)
    come_back(f"{pay_link(customer)}/return/{online.uid}?payment_ref_id="
              f"{online.provider_payment_id}&status=Aborted")  # typed, or a stale tab
    assert_not_credited(online, State.CANCELLED)
    nagad.customer_pays(online.provider_payment_id)  # paid after all; never came back
    assert online_payments_sweep() == 0  # asked a moment ago
    OnlinePayment.objects.filter(pk=online.pk).update(
        updated_at=timezone.now() - RECHECK_EVERY - timedelta(seconds=1))
    assert online_payments_sweep() == 1
    assert_credited(online, issuer_ref(nagad, online))
    assert online_payments_sweep() == 0


def test_an_ended_payment_is_not_asked_about_past_its_window_or_when_held(nagad):
    old, held = started(customer_owing("500.00")), started(customer_owing("500.00"))
    for online in (old, held):
        come_back(nagad.customer_pays(online.provider_payment_id, "cancel"))
    quiet = timezone.now() - RECHECK_EVERY - timedelta(seconds=1)
    OnlinePayment.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - RECHECK_WINDOW - timedelta(seconds=1), updated_at=quiet)
    OnlinePayment.objects.filter(pk=held.pk).update(error="check it", updated_at=quiet)
    asked = len(nagad.calls)
    assert online_payments_sweep() == 0
    assert len(nagad.calls) == asked


def test_a_refusal_while_checking_never_expires_a_payment_inside_its_window(nagad, settings):
    online = started(customer_owing("500.00"))
    nagad.customer_pays(online.provider_payment_id)
    OnlinePayment.objects.filter(pk=online.pk).update(expires_at=timezone.now())
    nagad.fail_next(1, status=429)  # throttled: says nothing about the money
    online_payment_check(online_payment_id=online.pk)
    assert_not_credited(online, State.REDIRECTED)
    online_payment_check(online_payment_id=online.pk)
    assert_credited(online, issuer_ref(nagad, online))
