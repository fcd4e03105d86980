"""The notification outbox: written with the event, sent once per event and channel, in
short batches, each notice marked as soon as its send returns."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing import notifications
from billing.messaging import message_id
from billing.models import Customer, Notification, Package
from billing.services import payment_record
from core.enums import PaymentMethod, UserKind
from tests.factories import UserFactory
from tests.fakes.sms_gateway import FakeSmsGateway

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    package = Package.objects.create(name="Fiber", speed_mbps=30, price=Decimal("1200.00"))
    return Customer.objects.create(
        name="Nasrin", phone="01812000000", email="nasrin@example.com", package=package
    )


@pytest.fixture
def gateway(settings):
    with FakeSmsGateway() as server:
        settings.SMS_BACKEND, settings.SMS_HTTP_URL = "http", server.url
        yield server


def sms_notices(customer, count: int) -> list[Notification]:
    return Notification.objects.bulk_create(
        Notification(customer=customer, event="SUSPENDED", event_key=f"suspend:{n}",
                     channel="SMS", next_attempt_at=timezone.now() - timedelta(seconds=count - n))
        for n in range(count)
    )


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


def test_every_payment_dispatches_in_process(customer, settings,
                                             django_capture_on_commit_callbacks):
    # Without a broker the task runs at once; the "a dispatch is queued" marker it leaves
    # must not hold back the next payment's notices.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    staff = UserFactory(kind=UserKind.STAFF)
    for month in ("JULY", "AUGUST"):
        with django_capture_on_commit_callbacks(execute=True):
            payment_record(
                customer=customer, amount=Decimal("100.00"), billing_month=month,
                billing_year=2026, payment_method=PaymentMethod.CASH, transaction_id="",
                entered_by=staff,
            )
    assert len(mail.outbox) == 2
    assert set(Notification.objects.values_list("state", flat=True)) == {"SENT"}


def test_the_email_message_id_is_the_notice_key(customer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATION_MESSAGE_ID_DOMAIN = "isp.example"
    notifications.notify(customer=customer, event="DUE_REMINDER", key="due:1:2026-07-10")
    Notification.objects.filter(channel="SMS").delete()
    notifications.notifications_send_due()
    # Sent again (as after a crash before its mark): the same Message-ID.
    Notification.objects.update(state="PENDING", next_attempt_at=timezone.now())
    notifications.notifications_send_due()
    ids = [message.message()["Message-ID"] for message in mail.outbox]
    assert ids == ["<due.1.2026-07-10.EMAIL@isp.example>"] * 2
    assert message_id("a.b:c d") == "<a=2Eb.c=20d@isp.example>"


def test_a_failed_send_is_retried_later_and_goes_out_exactly_once(customer, gateway):
    gateway.answer_next(500)
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
    requests = gateway.snapshot()
    assert [r.status for r in requests] == [500, 200]
    assert requests[1].key == "due:1:2026-07-10:SMS"
    assert requests[1].to == "01812000000"


def test_a_notice_that_keeps_failing_gives_up(customer, settings, gateway):
    gateway.answer_next(503, times=100)
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    notifications.notify(customer=customer, event="DUE_REMINDER", key="due:2:2026-07-10")
    Notification.objects.filter(channel="EMAIL").delete()
    for _ in range(3):
        Notification.objects.update(next_attempt_at=timezone.now())
        notifications.notifications_send_due()
    notice = Notification.objects.get()
    assert (notice.state, notice.attempts) == ("FAILED", 3)


@pytest.mark.parametrize(("status", "state"), [(400, "FAILED"), (422, "FAILED"),
                                                (429, "PENDING"), (502, "PENDING")])
def test_a_gateway_4xx_is_a_permanent_failure_but_429_is_not(customer, gateway, status, state):
    gateway.answer_next(status)
    sms_notices(customer, 1)
    assert notifications.notifications_send_due() == 0
    notice = Notification.objects.get()
    assert (notice.state, notice.attempts) == (state, 1)
    assert notice.last_error == f"SMS gateway answered {status}"
    assert len(gateway.snapshot()) == 1


def test_a_claim_left_by_a_dead_worker_is_taken_again_only_after_the_timeout(customer, settings):
    notifications.notify(customer=customer, event="BILL_ISSUED", key="bill:9")
    timeout = timedelta(seconds=settings.NOTIFICATION_CLAIM_TIMEOUT_SECONDS)
    # Its send may still be in flight: left alone.
    Notification.objects.update(state="SENDING", claimed_at=timezone.now() - timeout * 0.9)
    assert notifications.notifications_send_due() == 0
    Notification.objects.update(claimed_at=timezone.now() - timeout * 1.1)
    assert notifications.notifications_send_due() == 2


def test_a_batch_is_bounded_by_count(customer, settings, gateway):
    settings.NOTIFICATION_BATCH_SIZE = 3
    sms_notices(customer, 5)
    assert notifications.notifications_send_batch() == (3, True)
    assert notifications.notifications_send_batch() == (2, False)
    assert notifications.notifications_send_batch() == (0, False)
    assert len(gateway.snapshot()) == 5


def test_a_batch_is_bounded_by_time_and_gives_back_what_it_did_not_reach(
    customer, settings, gateway
):
    gateway.delay = 0.3
    settings.NOTIFICATION_BATCH_SECONDS = 0.5
    sms_notices(customer, 5)
    assert notifications.notifications_send_batch() == (2, True)  # sends at 0 s and 0.3 s
    states = list(Notification.objects.order_by("next_attempt_at")
                  .values_list("state", "claimed_at"))
    assert [state for state, _ in states] == ["SENT", "SENT", "PENDING", "PENDING", "PENDING"]
    assert [claimed for _, claimed in states[2:]] == [None] * 3  # due again at once
    assert len(gateway.snapshot()) == 2


@pytest.mark.django_db(transaction=True)
def test_each_notice_is_marked_sent_as_soon_as_its_send_returns(customer, gateway):
    marked_when_asked = []

    def count_marked(_request):  # in the gateway's thread: its own connection
        try:
            marked_when_asked.append(Notification.objects.filter(state="SENT").count())
        finally:
            connection.close()

    gateway.on_request = count_marked
    sms_notices(customer, 3)
    assert notifications.notifications_send_due() == 3
    assert marked_when_asked == [0, 1, 2]


def test_texts_come_from_templates(customer):
    staff = UserFactory(kind=UserKind.STAFF)
    payment = payment_record(
        customer=customer, amount=Decimal("200.00"), billing_month="AUGUST", billing_year=2026,
        payment_method=PaymentMethod.BKASH, transaction_id="BK1", entered_by=staff,
    )
    subject, text = notifications.render(Notification.objects.filter(payment=payment).first())
    assert subject == "Payment received"
    assert "200.00" in text and "BK1" in text and "1000.00" in text  # still due
