"""Hostile and broken requests at the pay page, the providers' way back and their
webhooks: every one is answered below 500, and none moves money."""

import json

import pytest
from django.test import Client

from billing.models import Collection, OnlinePayment
from billing.online_payments import online_payment_start
from billing.pay_links import pay_link
from tests.payments.helpers import customer_owing, local

pytestmark = pytest.mark.django_db

JUNK_VALUES = ["", "x" * 20_000, "\x00", "\ud800".encode("utf-8", "surrogatepass").decode(
    "latin-1"), "' OR 1=1 --", "<script>alert(1)</script>", "১২৩", "NaN", "-1", "1e309"]
JUNK_BODIES = [b"", b"\xff\xfe\x00", b"{", b"[]", b"null", b'{"Type": 1}', b"a=1&" * 5000,
               b"[" * 100_000,  # nested past Python's recursion limit
               json.dumps({"Type": "Notification", "Message": "{}"}).encode(),
               json.dumps({"Type": "Notification", "SignatureVersion": "1",
                           "SigningCertURL": "https://sns.evil.example.com/x.pem",
                           "Signature": "AAAA", "Message": "{}", "MessageId": "1",
                           "Timestamp": "now", "TopicArn": "t"}).encode()]


@pytest.fixture
def started(bkash, nagad, sslcommerz):
    """A customer with one open payment at each provider."""
    customer = customer_owing("500.00")
    payments = [online_payment_start(customer=customer, provider=code)
                for code in ("BKASH", "NAGAD", "SSLCOMMERZ")]
    return customer, payments


def test_junk_at_the_pay_page_and_the_way_back_is_never_a_500(started):
    customer, payments = started
    page = local(pay_link(customer))
    client = Client()
    for value in JUNK_VALUES:
        fields = {"provider": value, "paymentID": value, "payment_ref_id": value,
                  "tran_id": value, "val_id": value, "status": value}
        answers = [
            client.get(page, {"lang": value}),
            client.post(f"{page}/start", {"provider": value}),
            client.get(f"/pay/{value[:200] or 'x'}"),
            *(client.get(f"{page}/return/{online.uid}", fields) for online in payments),
            *(client.post(f"{page}/return/{online.uid}", fields) for online in payments),
            client.get(f"{page}/result/{payments[0].uid}", {"lang": value}),
            client.get(f"{page}/return/00000000-0000-0000-0000-000000000000", fields),
            *(client.post(f"{page}/return/{online.uid}", value.encode("utf-8", "replace"),
                          content_type=kind)
              for online in payments for kind in ("multipart/form-data; boundary=x",
                                                  "application/x-www-form-urlencoded")),
        ]
        assert all(answer.status_code < 500 for answer in answers), \
            [(answer.status_code, answer.request["PATH_INFO"]) for answer in answers]
    assert not Collection.objects.exists()
    assert not OnlinePayment.objects.filter(state="SUCCEEDED").exists()


@pytest.mark.parametrize("webhook", ["/pay/webhooks/bkash", "/pay/webhooks/sslcommerz"])
def test_junk_at_the_webhooks_is_a_400_and_never_money(started, webhook):
    client = Client()
    for body in JUNK_BODIES:
        for content_type in ("text/plain", "application/json",
                             "application/x-www-form-urlencoded", "multipart/form-data"):
            answer = client.post(webhook, body, content_type=content_type)
            assert 400 <= answer.status_code < 500 or answer.status_code == 200, \
                (body[:60], content_type, answer.status_code)
        assert client.get(webhook).status_code == 405
    assert not Collection.objects.exists()
