"""A connection change end to end: the API, the ConnectionChange record, the Celery task
(eager in tests) and the MikroTik backend against the fake router."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from billing.connections import connection_change_apply_now, connection_changes_resend
from billing.models import ConnectionChange, Customer, Package, Router
from billing.services import customer_status_set, payment_record
from core.enums import PaymentMethod, UserKind
from tests.factories import UserFactory
from tests.network.routers import pppoe_customer
from tests.worker.conftest import poll

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client_as, router_in_billing):
    client, _user = client_as(UserKind.ADMIN)
    return client


@pytest.fixture
def customer(router, router_in_billing):
    """A PPPoE customer already on the fake router: a secret (of the package's profile)
    and a live session. (Creating one through the API carries it out at once:
    tests/billing/test_api_customers.py.)"""
    package = Package.objects.create(name="Home 20", speed_mbps=20, price="500.00",
                                     router_profile="default")
    alice = pppoe_customer(router_in_billing, "alice", name="Alice", phone="01700000001",
                           password="pppoe-pass", package=package)
    router.add_secret("alice")
    router.add_session("alice")
    return alice


def toggle(client, captured, username, is_active):
    with captured(execute=True) as callbacks:
        response = client.post(
            "/customers/status/toggle", {"username": username, "is_active": is_active}
        )
    return response, callbacks


def test_toggle_off_switches_the_connection_off_on_the_router(
    admin, customer, router, django_capture_on_commit_callbacks
):
    assert ConnectionChange.objects.count() == 0

    response, callbacks = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"message", "task_id"}
    assert body["task_id"]
    assert len(callbacks) == 1

    customer.refresh_from_db()
    assert customer.is_active is False
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []

    change = ConnectionChange.objects.get(customer=customer)
    assert change.task_id == body["task_id"]
    assert change.enable is False
    assert change.reason == ConnectionChange.Reason.TOGGLE
    assert change.confirmed_at is not None
    assert change.attempts == 1
    assert change.last_error == ""
    assert change.superseded is False
    assert customer.network_confirmed_at == change.confirmed_at
    assert customer.network_confirmed_active is False
    assert customer.network_last_error == ""
    # The task id the API answered names the change; its state lives in the row.
    status = admin.get(f"/tasks/{body['task_id']}").json()
    assert status["status"] == "SUCCESS" and status["result"]["attempts"] == 1
    assert not TaskResult.objects.filter(task_id=body["task_id"]).exists()


def test_toggle_on_switches_the_connection_on(
    admin, customer, router, django_capture_on_commit_callbacks
):
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    assert router.secret("alice")["disabled"] == "true"

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.is_active is True
    assert router.secret("alice")["disabled"] == "false"
    latest = ConnectionChange.objects.filter(customer=customer).first()
    assert latest.enable is True and latest.confirmed_at is not None
    assert customer.network_confirmed_active is True
    assert ConnectionChange.objects.filter(confirmed_at__isnull=False).count() == 2


def test_toggle_to_the_same_state_still_tells_the_router(
    admin, customer, router, django_capture_on_commit_callbacks
):
    """The database says active, the router disagrees: the toggle puts the router right."""
    router.secrets[router.secret("alice")[".id"]]["disabled"] = "true"

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    assert router.secret("alice")["disabled"] == "false"
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True


def test_unknown_username_is_not_found(admin, customer, router, django_capture_on_commit_callbacks):
    response, callbacks = toggle(admin, django_capture_on_commit_callbacks, "nobody", False)

    assert response.status_code == 404
    assert callbacks == []
    assert ConnectionChange.objects.count() == 0
    assert router.calls() == []


def test_router_failing_leaves_the_change_unconfirmed_until_applied_again(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.fail_next(1, status=503)

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    # The request is accepted and the database changed at once...
    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.is_active is False
    # ...but the router did not confirm: the error is kept, nothing is confirmed.
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert change.superseded is False
    assert change.attempts == 1
    assert "503" in change.last_error
    assert customer.network_last_error == change.last_error
    assert customer.network_confirmed_at is None
    assert customer.network_confirmed_active is None
    assert router.secret("alice")["disabled"] == "false"
    assert len(router.sessions_of("alice")) == 1
    assert len(router.calls()) == 1  # eager mode does not retry in the request
    # The next attempt is due after the first backoff; the sweep resends it once overdue.
    assert change.next_attempt_at > change.created_at
    assert change.applying_until is None

    # The router recovers; the change is carried out again.
    assert connection_change_apply_now(change_id=change.pk) is True

    change.refresh_from_db()
    customer.refresh_from_db()
    assert change.confirmed_at is not None
    assert change.attempts == 2
    assert change.last_error == ""
    assert customer.network_confirmed_at == change.confirmed_at
    assert customer.network_confirmed_active is False
    assert customer.network_last_error == ""
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []

    # A confirmed change is not carried out again.
    calls = len(router.calls())
    assert connection_change_apply_now(change_id=change.pk) is True
    assert len(router.calls()) == calls


def test_apply_now_raises_and_records_when_the_router_still_fails(admin, customer, router):
    from billing.connections import connection_change_request
    from billing.routeros import NetworkError

    change = connection_change_request(
        customer=customer, enable=False, reason=ConnectionChange.Reason.TOGGLE, requested_by=None
    )
    router.fail_next(1, status=500)

    with pytest.raises(NetworkError, match="500"):
        connection_change_apply_now(change_id=change.pk)

    change.refresh_from_db()
    customer.refresh_from_db()
    assert change.confirmed_at is None and "500" in change.last_error
    assert customer.network_last_error == change.last_error


def test_wrong_router_password_is_recorded(
    admin, customer, router, router_in_billing, django_capture_on_commit_callbacks
):
    Router.objects.filter(pk=router_in_billing.pk).update(password="not-the-password")

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "401" in change.last_error
    assert router.secret("alice")["disabled"] == "false"


def test_router_slower_than_the_timeout_is_recorded(
    admin, customer, router, router_in_billing, django_capture_on_commit_callbacks
):
    Router.objects.filter(pk=router_in_billing.pk).update(timeout_seconds=0.2)
    router.delay = 2.0

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "too slow" in change.last_error
    assert Customer.objects.get(pk=customer.pk).network_last_error == change.last_error

    router.delay = 0
    assert connection_change_apply_now(change_id=change.pk) is True
    assert router.secret("alice")["disabled"] == "true"


def test_a_missing_secret_is_created_with_the_customers_password(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.secrets.clear()

    toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is not None
    secret = router.secret("alice")
    assert (secret["disabled"], secret["password"], secret["profile"]) == (
        "true", "pppoe-pass", "default")


def test_a_missing_secret_without_a_password_to_make_it_is_recorded(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.secrets.clear()
    Customer.objects.filter(pk=customer.pk).update(password="")

    toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "alice" in change.last_error
    assert router.secrets == {}


def test_a_second_change_supersedes_an_older_unconfirmed_one(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.fail_next(1, status=503)
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    older = ConnectionChange.objects.get(customer=customer)
    assert older.confirmed_at is None

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    older.refresh_from_db()
    newer = ConnectionChange.objects.exclude(pk=older.pk).get(customer=customer)
    assert older.superseded is True
    assert older.confirmed_at is None
    assert newer.superseded is False
    assert newer.enable is True
    assert newer.confirmed_at is not None
    assert router.secret("alice")["disabled"] == "false"

    # The older change, retried late, must not switch the customer off again.
    calls = len(router.calls())
    assert connection_change_apply_now(change_id=older.pk) is True
    assert len(router.calls()) == calls
    assert router.secret("alice")["disabled"] == "false"
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True
    older.refresh_from_db()
    assert older.attempts == 1


def test_a_new_change_leaves_confirmed_ones_alone(
    admin, customer, router, django_capture_on_commit_callbacks
):
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    first = ConnectionChange.objects.get(customer=customer)
    assert first.confirmed_at is not None

    toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    first.refresh_from_db()
    assert first.superseded is False
    assert ConnectionChange.objects.filter(customer=customer, superseded=True).count() == 0


def test_changes_of_other_customers_are_not_superseded(
    admin, customer, router, django_capture_on_commit_callbacks
):
    other = pppoe_customer(Router.objects.get(pk=customer.router_id), "bob",
                           package=customer.package, password="pppoe-pass")
    router.add_secret("bob")
    router.fail_next(1, status=503)
    toggle(admin, django_capture_on_commit_callbacks, "bob", False)
    bobs = ConnectionChange.objects.get(customer=other)
    assert bobs.confirmed_at is None

    toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    bobs.refresh_from_db()
    assert bobs.superseded is False
    assert connection_change_apply_now(change_id=bobs.pk) is True
    assert router.secret("bob")["disabled"] == "true"
    assert router.secret("alice")["disabled"] == "true"


# Retries, the sweep and the router's latency ----------------------------------


def deliver(change):
    """One delivery of the change's task, as a worker would run it."""
    from tasks.network import connection_change_apply

    return connection_change_apply.apply(args=[change.pk]).get()


def test_a_delivery_before_the_change_is_due_is_a_no_op_and_the_sweep_leaves_a_live_chain(
    admin, customer, router, settings, django_capture_on_commit_callbacks
):
    settings.NETWORK_RETRY_BASE_SECONDS = 30
    router.fail_next(1, status=503)
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    change = ConnectionChange.objects.get(customer=customer)
    assert change.attempts == 1 and change.confirmed_at is None
    calls = len(router.calls())

    # The retry chain is alive (its next attempt is 30 s away): a duplicate delivery
    # does nothing, and the sweep sends nothing.
    assert deliver(change) is False
    assert connection_changes_resend(stale_seconds=60) == 0
    assert len(router.calls()) == calls
    change.refresh_from_db()
    assert change.attempts == 1

    # The chain died (its attempt is long overdue): the sweep sends it once.
    ConnectionChange.objects.filter(pk=change.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert connection_changes_resend(stale_seconds=60) == 1
    change.refresh_from_db()
    assert change.confirmed_at is not None and change.attempts == 2
    assert router.secret("alice")["disabled"] == "true"
    assert connection_changes_resend(stale_seconds=60) == 0


def start_in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def hanging_router_change(router, settings, customer, *, enable: bool, delay: float):
    """A change of the customer being carried out on a router that takes ``delay``
    seconds per answer, in another thread; returned once the router has the call."""
    Router.objects.filter(pk=customer.router_id).update(timeout_seconds=delay * 3)
    router.delay = delay
    Customer.objects.filter(pk=customer.pk).update(is_active=enable)
    change = ConnectionChange.objects.create(
        customer=customer, enable=enable, reason=ConnectionChange.Reason.TOGGLE,
        task_id="hanging",
    )
    arrived = router.arrivals
    thread = start_in_thread(lambda: connection_change_apply_now(change_id=change.pk))
    assert poll(lambda: router.arrivals > arrived, timeout=5), "the router never got the call"
    return change, thread


def timed(call):
    started = time.monotonic()
    value = call()
    return value, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_a_payment_is_not_held_by_a_router_that_hangs(admin, customer, router, settings):
    change, thread = hanging_router_change(router, settings, customer, enable=False, delay=1.5)

    payment, took = timed(lambda: payment_record(
        customer=customer, amount=Decimal("100.00"), billing_month="JANUARY",
        billing_year=2026, payment_method=PaymentMethod.CASH,
        entered_by=UserFactory(kind=UserKind.STAFF),
    ))

    print(f"payment_record took {took:.3f}s while the router hung")
    assert took < 0.5, f"the payment waited {took:.2f}s on the router call"
    assert payment.amount == Decimal("100.00")
    thread.join(timeout=20)
    assert not thread.is_alive()
    change.refresh_from_db()
    assert change.confirmed_at is not None
    assert router.secret("alice")["disabled"] == "true"


@pytest.mark.django_db(transaction=True)
def test_two_racing_changes_end_with_the_router_in_the_latest_state(
    admin, customer, router, settings
):
    """Switched off (the router hangs on it), then switched on again at once: the newer
    change reaches the router after the older one, whatever order they run in."""
    older, thread = hanging_router_change(router, settings, customer, enable=False, delay=1.0)
    actor = UserFactory(kind=UserKind.STAFF)

    newer, took = timed(
        lambda: customer_status_set(username="alice", is_active=True, actor=actor)
    )

    print(f"the toggle took {took:.3f}s while the router hung")
    assert took < 0.5, f"the toggle waited {took:.2f}s on the router call"
    thread.join(timeout=30)
    assert not thread.is_alive()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.superseded is True and older.confirmed_at is None
    assert newer.confirmed_at is not None, (newer.attempts, newer.last_error, older.last_error)
    assert router.secret("alice")["disabled"] == "false"
    assert [call.body for call in router.calls("PATCH")][-1] == {"disabled": "false"}
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True
    assert connection_changes_resend(stale_seconds=0) == 0


def test_an_attempt_that_outlived_its_lease_leaves_the_change_to_the_one_that_took_over(
    admin, customer, router
):
    from billing.connections import _claim, _finish

    change = ConnectionChange.objects.create(
        customer=customer, enable=True, reason=ConnectionChange.Reason.TOGGLE, task_id="t"
    )
    late_lease, _, _ = _claim(change.pk, scheduled=False)
    # Its lease ran out (the router kept it too long); the sweep's delivery took over.
    ConnectionChange.objects.filter(pk=change.pk).update(
        applying_until=timezone.now() - timedelta(seconds=1), next_attempt_at=timezone.now()
    )
    lease, _router, target = _claim(change.pk, scheduled=True)
    assert (target.username, target.enabled) == ("alice", True) and lease > late_lease

    assert _finish(change.pk, lease=late_lease, target=target, error=None).done is False

    change.refresh_from_db()
    assert change.confirmed_at is None and change.applying_until == lease
    assert _finish(change.pk, lease=lease, target=target, error=None).done is True
    change.refresh_from_db()
    assert change.confirmed_at is not None and change.applying_until is None
