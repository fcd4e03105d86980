"""The notification outbox on real workers, against a fake SMS gateway (tests/fakes) that
counts every text per idempotency key: a first send that fails still goes out once; a
worker killed mid-dispatch and a PostgreSQL restart mid-dispatch repeat at most the notice
each dispatching process had in flight (none where the gateway honours the key); many
triggers queue one dispatch message, not one each."""

import re
import time

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from billing.models import Customer, Notification, Package
from billing.notifications import notifications_dispatch_soon
from core.enums import UserKind
from core.queue import publish, queue_for
from tasks.notifications import notifications_dispatch
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.private_postgres import private_postgres  # noqa: F401 (the fixture)
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# Two pool processes, each with at most one text in flight when it dies.
CONCURRENCY = 2
NOTICES = 300
# Short batches and a short claim, so that a test recovers in seconds.
FAST = {
    "SMS_BACKEND": "http", "SMS_HTTP_TOKEN": "gateway-token", "SMS_HTTP_TIMEOUT_SECONDS": 1,
    "EMAIL_TIMEOUT": 1, "NOTIFICATION_BATCH_SECONDS": 1, "NOTIFICATION_CLAIM_TIMEOUT_SECONDS": 5,
}


def seed_notices(count: int) -> set[str]:
    """``count`` customers with a phone and a due SMS notice each; the notices' gateway
    keys. Also run by ``manage.py shell`` against a private database."""
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00")
    customers = Customer.objects.bulk_create(
        Customer(name=f"Fault {n}", phone=f"0170{n:07d}", package=package)
        for n in range(count)
    )
    Notification.objects.bulk_create(
        Notification(customer=c, event="SUSPENDED", event_key=f"fault:{c.pk}", channel="SMS",
                     next_attempt_at=timezone.now()) for c in customers
    )
    return {f"fault:{c.pk}:SMS" for c in customers}


def dispatch_now(worker) -> None:
    """Publish the outbox sweep, as the schedule does, and wait for the worker to finish it
    (the task stores no result: the notices hold the state)."""
    task_id = notifications_dispatch.apply_async().id
    wait_until(lambda: f"[{task_id}] succeeded" in worker.output(), timeout=30,
               watch=[worker], message="the dispatch task to finish")


def sweep_until(done, *, timeout: float, watch) -> None:
    """Send the outbox sweep every second (the schedule sends it every minute) until
    ``done()``."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"notices still unsent after {timeout}s\n"
                        + "\n".join(w.tail() for w in watch))
        publish("notifications.dispatch")
        time.sleep(1)


def assert_repeats_bounded(gateway: FakeSmsGateway, keys: set[str], *, honour_key: bool):
    assert set(gateway.delivered()) == keys, "every notice reached its phone"
    repeats = gateway.repeats()
    print(f"requests: {len(gateway.snapshot())} for {len(keys)} notices; "
          f"{len(repeats)} delivered twice: {sorted(repeats)[:5]}")
    if honour_key:
        assert repeats == {}
    else:
        assert len(repeats) <= CONCURRENCY and set(repeats.values()) <= {2}, repeats


def test_a_notice_whose_first_send_fails_goes_out_exactly_once(client_as, start_worker):
    api, _ = client_as(UserKind.STAFF)
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00")
    customer = Customer.objects.create(name="Alice", phone="01700000001", package=package)
    with FakeSmsGateway() as gateway:
        gateway.answer_next(500)
        worker = start_worker(SMS_BACKEND="http", SMS_HTTP_URL=gateway.url,
                              SMS_HTTP_TOKEN="gateway-token", SMS_HTTP_TIMEOUT_SECONDS=5)

        response = api.post("/payments", {
            "customer_id": customer.pk, "amount": "200.00", "billing_month": "MARCH",
            "billing_year": 2030, "payment_method": "CASH", "transaction_id": "CASH-1",
        })
        assert response.status_code == 201, response.content

        # Written with the payment, tried at once by the worker: the gateway fails it.
        notice = Notification.objects.get()
        assert (notice.event, notice.channel) == ("PAYMENT_RECEIVED", "SMS")
        wait_until(lambda: Notification.objects.filter(pk=notice.pk, attempts=1).exists(),
                   timeout=30, watch=[worker], message="the first attempt")
        notice.refresh_from_db()
        assert notice.state == Notification.State.PENDING
        assert notice.last_error == "SMS gateway answered 500"
        assert notice.next_attempt_at > timezone.now()  # backed off
        assert [r.status for r in gateway.snapshot()] == [500]

        # Not due yet: a sweep now sends nothing.
        dispatch_now(worker)
        assert len(gateway.snapshot()) == 1

        # Due again: the sweep sends it, once.
        Notification.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
        dispatch_now(worker)
        notice.refresh_from_db()
        assert notice.state == Notification.State.SENT
        assert notice.attempts == 2
        assert notice.last_error == "" and notice.sent_at is not None
        requests = gateway.snapshot()
        assert [r.status for r in requests] == [500, 200]
        assert {r.key for r in requests} == {notice.event_key + ":SMS"}
        assert requests[1].to == "01700000001"
        assert "200.00" in requests[1].message
        assert requests[1].auth == "Bearer gateway-token"

        # Another sweep sends nothing more.
        dispatch_now(worker)
        assert len(gateway.snapshot()) == 2
        assert Notification.objects.get().state == Notification.State.SENT


@pytest.mark.parametrize("honour_key", [False, True], ids=["key-ignored", "key-honoured"])
def test_a_worker_killed_mid_dispatch_repeats_at_most_the_texts_in_flight(
    start_worker, honour_key
):
    keys = seed_notices(NOTICES)
    with FakeSmsGateway(honour_key=honour_key, delay=0.03) as gateway:
        env = {**FAST, "SMS_HTTP_URL": gateway.url}
        worker = start_worker(concurrency=CONCURRENCY, **env)
        for _ in range(CONCURRENCY):
            publish("notifications.dispatch")
        wait_until(lambda: len(gateway.snapshot()) >= 80, timeout=60, watch=[worker],
                   message="the dispatch to be under way")
        worker.kill()
        marked = Notification.objects.filter(state=Notification.State.SENT).count()
        print(f"killed after {len(gateway.snapshot())} texts; {marked} marked SENT")

        replacement = start_worker(concurrency=CONCURRENCY, **env)
        sweep_until(lambda: Notification.objects.filter(state="SENT").count() == NOTICES,
                    timeout=90, watch=[replacement])
        assert_repeats_bounded(gateway, keys, honour_key=honour_key)
    # Short tasks: one batch each (300 texts take 9 s here), never a whole outbox.
    took = [float(s) for s in re.findall(r"notifications\.dispatch\[\S+\] succeeded in ([\d.]+)s",
                                         replacement.output())]
    print(f"{len(took)} dispatch tasks, the longest {max(took):.2f}s")
    assert took and max(took) < FAST["NOTIFICATION_BATCH_SECONDS"] + 2


def test_a_database_restart_mid_dispatch_repeats_at_most_the_texts_in_flight(
    start_worker, private_postgres  # noqa: F811
):
    private_postgres.manage("shell", "-c", "from tests.worker.test_notifications import "
                            f"seed_notices; seed_notices({NOTICES})")

    def sent() -> int:
        try:
            with private_postgres.connect() as conn:
                return conn.execute(
                    "SELECT count(*) FROM billing_notification WHERE state = 'SENT'"
                ).fetchone()[0]
        except Exception:  # noqa: BLE001 - down or starting: not yet
            return -1

    with private_postgres.connect() as conn:
        keys = {f"{key}:SMS" for (key,) in conn.execute(
            "SELECT event_key FROM billing_notification").fetchall()}
    with FakeSmsGateway(delay=0.03) as gateway:
        worker = start_worker(concurrency=CONCURRENCY, DATABASE_URL=private_postgres.url,
                              SMS_HTTP_URL=gateway.url, **FAST)
        for _ in range(CONCURRENCY):
            publish("notifications.dispatch")
        wait_until(lambda: len(gateway.snapshot()) >= 80, timeout=60, watch=[worker],
                   message="the dispatch to be under way")
        private_postgres.stop()
        stopped_at = len(gateway.snapshot())
        time.sleep(10)
        private_postgres.start()
        print(f"PostgreSQL stopped 10 s after {stopped_at} texts")
        sweep_until(lambda: sent() == NOTICES, timeout=120, watch=[worker])
        assert_repeats_bounded(gateway, keys, honour_key=False)


def test_many_triggers_queue_one_dispatch_message(producer, start_worker):
    seed_notices(30)
    broker = redis.Redis.from_url(producer.broker_url)
    name = queue_for("notifications.dispatch")
    # A bill run's chunks and payments each ask for a dispatch while none has started.
    for _ in range(50):
        with transaction.atomic():
            notifications_dispatch_soon()
    assert broker.llen(name) == 1

    with FakeSmsGateway() as gateway:
        worker = start_worker(SMS_HTTP_URL=gateway.url, **FAST)
        wait_until(lambda: Notification.objects.filter(state="SENT").count() == 30,
                   timeout=60, watch=[worker], message="the 30 notices to go out")
        assert len(gateway.snapshot()) == 30
    assert broker.llen(name) == 0
