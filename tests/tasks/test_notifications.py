"""The notification outbox: written with the event, sent once per event and channel."""

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from billing import notifications
from billing.models import Customer, Notification, Package
from billing.services import payment_record
from core.enums import PaymentMethod, UserKind
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    package = Package.objects.create(name="Fiber", speed_mbps=30, price=Decimal("1200.00"))
    return Customer.objects.create(
        name="Nasrin", phone="01812000000", email="nasrin@example.com", package=package
    )


@pytest.fixture
def gateway():
    """A local SMS gateway that fails the first ``failures`` requests."""

    class Gateway(BaseHTTPRequestHandler):
        failures = 1
        received: list[tuple[int, dict, str]] = []

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            status = 500 if Gateway.failures > 0 else 200
            Gateway.failures -= 1
            Gateway.received.append((status, dict(self.headers), body))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Gateway, f"http://127.0.0.1:{server.server_port}/send"
    server.shutdown()


def test_a_payment_writes_its_notices_in_the_same_transaction(customer):
    staff = UserFactory(kind=UserKind.STAFF)
    payment = payment_record(
        customer=customer, amount=Decimal("1200.00"), billing_month="JULY", billing_year=2026,
        payment_method=PaymentMethod.NAGAD, transaction_id="NG77", entered_by=staff,
    )
    notices = Notification.objects.filter(payment=payment)
    assert sorted(notices.values_list("event", "channel")) == [
        ("PAYMENT_RECEIVED", "EMAIL"), ("PAYMENT_RECEIVED", "SMS"),
    ]
    assert notices.first().event_key == f"collection:{payment.collections.get().pk}"


def test_dispatch_sends_email_and_sms_once(customer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notifications.notify(customer=customer, event="SUSPENDED", key="suspend:1")
    notifications.notify(customer=customer, event="SUSPENDED", key="suspend:1")
    assert Notification.objects.count() == 2

    assert notifications.notifications_send_due() == 2
    assert notifications.notifications_send_due() == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["nasrin@example.com"]
    assert "suspended" in mail.outbox[0].body
    assert set(Notification.objects.values_list("state", flat=True)) == {"SENT"}


def test_a_failed_send_is_retried_later_and_goes_out_exactly_once(customer, settings, gateway):
    handler, url = gateway
    settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", url
    notifications.notify(customer=customer, event="DUE_REMINDER", key="due:1:2026-07-10")
    notice = Notification.objects.get(channel="SMS")
    Notification.objects.exclude(pk=notice.pk).delete()

    assert notifications.notifications_send_due() == 0
    notice.refresh_from_db()
    assert (notice.state, notice.attempts) == ("PENDING", 1)
    assert "500" in notice.last_error
    assert notice.next_attempt_at > timezone.now()  # backed off, not due yet
    assert notifications.notifications_send_due() == 0

    Notification.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    assert notifications.notifications_send_due() == 1
    assert notifications.notifications_send_due() == 0
    notice.refresh_from_db()
    assert (notice.state, notice.attempts) == ("SENT", 2)
    statuses = [status for status, _, _ in handler.received]
    assert statuses == [500, 200]
    headers = handler.received[1][1]
    assert headers["Idempotency-Key"] == "due:1:2026-07-10:SMS"
    assert "01812000000" in handler.received[1][2]


def test_a_notice_that_keeps_failing_gives_up(customer, settings, gateway):
    handler, url = gateway
    handler.failures = 100
    settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", url
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    notifications.notify(customer=customer, event="DUE_REMINDER", key="due:2:2026-07-10")
    Notification.objects.filter(channel="EMAIL").delete()
    for _ in range(3):
        Notification.objects.update(next_attempt_at=timezone.now())
        notifications.notifications_send_due()
    notice = Notification.objects.get()
    assert (notice.state, notice.attempts) == ("FAILED", 3)


def test_a_claim_left_by_a_dead_worker_is_taken_again(customer):
    notifications.notify(customer=customer, event="BILL_ISSUED", key="bill:9")
    Notification.objects.update(
        state="SENDING", claimed_at=timezone.now() - notifications.CLAIM_TIMEOUT * 2
    )
    assert notifications.notifications_send_due() == 2


def test_texts_come_from_templates(customer):
    staff = UserFactory(kind=UserKind.STAFF)
    payment = payment_record(
        customer=customer, amount=Decimal("200.00"), billing_month="AUGUST", billing_year=2026,
        payment_method=PaymentMethod.BKASH, transaction_id="BK1", entered_by=staff,
    )
    subject, text = notifications.render(Notification.objects.filter(payment=payment).first())
    assert subject == "Payment received"
    assert "200.00" in text and "BK1" in text and "1000.00" in text  # still due
