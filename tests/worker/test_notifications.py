"""The notification outbox on a real worker, with an SMS gateway (a local HTTP server)
that fails the first send: the notice still goes out, and exactly once."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from billing.models import Customer, Notification, Package
from core.enums import UserKind
from tasks.notifications import notifications_dispatch
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class Gateway:
    """An SMS gateway: answers 500 to the first ``fail_first`` requests, then 200, and
    keeps every request with what it answered."""

    def __init__(self, fail_first: int = 1):
        self.fail_first = fail_first
        self.received: list[dict] = []
        self.lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with gateway.lock:
                    status = 500 if len(gateway.received) < gateway.fail_first else 200
                    gateway.received.append({
                        "path": self.path,
                        "key": self.headers.get("Idempotency-Key"),
                        "auth": self.headers.get("Authorization"),
                        "body": json.loads(body or b"null"),
                        "status": status,
                    })
                answer = json.dumps({"ok": status == 200}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format, *args):  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"

    def requests(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def gateway():
    with Gateway(fail_first=1) as server:
        yield server


def dispatch_now(worker) -> int:
    """Publish the outbox sweep, as the schedule does, and wait for the worker to do it;
    how many notices it sent."""
    result = notifications_dispatch.apply_async()
    done = wait_until(
        lambda: TaskResult.objects.filter(task_id=result.id, status="SUCCESS").first(),
        timeout=30, watch=[worker], message="the dispatch task to finish",
    )
    return json.loads(done.result)


def test_a_notice_whose_first_send_fails_goes_out_exactly_once(
    client_as, start_worker, gateway
):
    api, _ = client_as(UserKind.STAFF)
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00")
    customer = Customer.objects.create(name="Alice", phone="01700000001", package=package)
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
    assert [r["status"] for r in gateway.requests()] == [500]

    # Not due yet: a sweep now sends nothing.
    assert dispatch_now(worker) == 0
    assert len(gateway.requests()) == 1

    # Due again: the sweep sends it, once.
    Notification.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    assert dispatch_now(worker) == 1

    notice.refresh_from_db()
    assert notice.state == Notification.State.SENT
    assert notice.attempts == 2
    assert notice.last_error == "" and notice.sent_at is not None
    requests = gateway.requests()
    assert [r["status"] for r in requests] == [500, 200]
    key = notice.event_key + ":SMS"
    assert {r["key"] for r in requests} == {key}
    assert requests[1]["body"]["to"] == "01700000001"
    assert "200.00" in requests[1]["body"]["message"]
    assert requests[1]["auth"] == "Bearer gateway-token"

    # Another sweep sends nothing more.
    assert dispatch_now(worker) == 0
    assert len(gateway.requests()) == 2
    assert Notification.objects.get().state == Notification.State.SENT
