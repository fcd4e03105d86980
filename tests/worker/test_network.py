"""Connection changes on real workers, against the fake RouterOS server: retries bring
the router in sync; while it is unreachable each change has one chain of retries, which
the sweep leaves alone while it lives and resumes when its worker died; a router that
hangs holds no money write; the latest change is the one the router ends with."""

import time

import pytest

from billing.connections import connection_changes_resend
from billing.models import ConnectionChange, Customer, Package, Router
from core.enums import ConnectionType, UserKind
from tests.network.routers import router_record
from tests.worker.conftest import wait_task, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def router_in_billing(router):
    return router_record(router, timeout=2)


@pytest.fixture
def alice(router, router_in_billing):
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00",
                                     router_profile="default")
    customer = Customer.objects.create(
        name="Alice", phone="01700000001", package=package, username="alice",
        password="pppoe-pass", connection_type=ConnectionType.PPPOE, router=router_in_billing,
    )
    router.add_secret("alice")
    router.add_session("alice")
    return customer


def router_env(router, *, timeout: float = 2, **extra):
    """The worker's environment; the router's timeout is on its record."""
    Router.objects.filter(port=router.port).update(timeout_seconds=timeout)
    return extra


def toggle(api, is_active: bool) -> ConnectionChange:
    response = api.post("/customers/status/toggle", {"username": "alice", "is_active": is_active})
    assert response.status_code == 200, response.content
    return ConnectionChange.objects.get(task_id=response.json()["task_id"])


def confirmed(change: ConnectionChange) -> bool:
    change.refresh_from_db()
    return change.confirmed_at is not None


def test_a_router_that_fails_twice_then_answers_ends_in_sync(
    client_as, start_worker, router, alice
):
    api, _ = client_as(UserKind.MANAGER)
    worker = start_worker(**router_env(router, NETWORK_RETRY_BASE_SECONDS=0.2))
    router.fail_next(2, status=503)

    change = toggle(api, False)

    body = wait_task(api, change.task_id, timeout=60, watch=[worker])
    assert body["status"] == "SUCCESS", body
    assert body["result"]["attempts"] == 3
    assert body["result"]["last_error"] == ""

    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []
    failed = [call for call in router.calls() if call.status == 503]
    assert len(failed) == 2
    assert [call.body for call in router.calls("PATCH")] == [{"disabled": "true"}]
    change.refresh_from_db()
    assert change.confirmed_at is not None and change.attempts == 3
    alice.refresh_from_db()
    assert alice.is_active is False
    assert alice.network_confirmed_active is False
    assert alice.network_confirmed_at == change.confirmed_at
    assert alice.network_last_error == ""
    # The worker retried the task itself (twice), with the error it met.
    log = worker.output()
    assert log.count(f"connection_change_apply[{change.task_id}] retry") == 2, worker.tail()


def chain_attempts(elapsed: float, base: float, most: float) -> int:
    """How many attempts one retry chain makes in ``elapsed`` seconds at the most."""
    attempts, at = 1, 0.0
    while True:
        at += min(most, base * 2 ** (attempts - 1))
        if at > elapsed:
            return attempts
        attempts += 1


def test_an_unreachable_router_gets_one_chain_of_retries_per_change_whatever_the_sweep_does(
    client_as, start_worker, router, alice
):
    """A few minutes of outage, scaled down: retries after 0.25 s doubling up to 1 s, and
    the minute sweep run four times a second with a 1 s grace."""
    base, most = 0.25, 1.0
    api, _ = client_as(UserKind.MANAGER)
    worker = start_worker(**router_env(
        router, NETWORK_RETRY_BASE_SECONDS=base, NETWORK_RETRY_MAX_SECONDS=most,
    ))
    router.fail_next(100_000, status=503)

    started = time.monotonic()
    change = toggle(api, False)
    resent = 0
    while time.monotonic() - started < 10:
        resent += connection_changes_resend(stale_seconds=1)
        time.sleep(0.25)
    elapsed = time.monotonic() - started

    change.refresh_from_db()
    attempts = change.attempts
    received = worker.output().count(f"connection_change_apply[{change.task_id}] received")
    bound = chain_attempts(elapsed, base, most)
    print(f"{elapsed:.1f}s unreachable: {attempts} attempts (one chain: at most {bound}), "
          f"{received} deliveries, {resent} resent by the sweep")
    assert resent == 0, "the sweep resent a change whose chain is alive"
    assert attempts <= bound, f"{attempts} attempts in {elapsed:.1f}s; one chain makes {bound}"
    assert attempts >= bound - 3, "the retry chain stalled"
    assert len(router.calls("GET")) == attempts  # every attempt asked the router once
    # No delivery beyond the chain's own (the next retry may be received, waiting its time).
    assert attempts <= received <= attempts + 1

    router.recover()
    wait_until(lambda: confirmed(change), timeout=30, watch=[worker],
               message="the change to be confirmed once the router answers")
    assert [call.body for call in router.calls("PATCH")] == [{"disabled": "true"}]
    assert router.sessions_of("alice") == []
    assert connection_changes_resend(stale_seconds=0) == 0


def test_a_chain_whose_worker_was_killed_at_the_router_is_resumed_by_the_sweep(
    client_as, start_worker, router, alice
):
    api, _ = client_as(UserKind.MANAGER)
    env = router_env(router, timeout=1, NETWORK_ATTEMPT_SECONDS=1,
                     NETWORK_RETRY_BASE_SECONDS=0.2)
    first = start_worker(**env)
    router.delay = 30  # the router hangs

    change = toggle(api, False)
    wait_until(lambda: router.arrivals >= 1, timeout=30, watch=[first],
               message="the worker to call the router")
    first.kill()  # at the router: its message is unacknowledged, its lease runs on
    router.recover()
    second = start_worker(**env)

    resent, started = 0, time.monotonic()
    while not confirmed(change) and time.monotonic() - started < 40:
        resent += connection_changes_resend(stale_seconds=1)
        time.sleep(0.25)
    took = time.monotonic() - started

    print(f"resumed and confirmed {took:.1f}s after the kill; {resent} resend(s)")
    assert change.confirmed_at is not None, second.tail()
    assert resent == 1  # resent once, when its lease was over, not on every sweep
    assert change.attempts == 2
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []


def test_a_payment_is_not_held_by_a_router_that_hangs_and_the_latest_change_wins(
    client_as, start_worker, router, alice
):
    """Switched off while the router hangs on it, then paid: the payment answers at once,
    and the router ends switched on (the change the payment made runs after the other)."""
    api, _ = client_as(UserKind.ADMIN)
    worker = start_worker(**router_env(router, timeout=5,
                                       NETWORK_ATTEMPT_SECONDS=20))
    router.delay = 1.5
    off = toggle(api, False)
    wait_until(lambda: router.arrivals >= 1, timeout=30, watch=[worker],
               message="the worker to call the router")

    started = time.monotonic()
    paid = api.post("/payments", {
        "customer_id": alice.pk, "amount": "500.00", "billing_month": "JANUARY",
        "billing_year": 2026, "payment_method": "CASH",
    })
    took = time.monotonic() - started

    print(f"POST /payments answered in {took:.3f}s while the router hung")
    assert paid.status_code == 201, paid.content
    assert paid.json()["paid"] is True
    assert took < 1.0, f"the payment waited {took:.2f}s on the router"
    on = ConnectionChange.objects.exclude(pk=off.pk).get(customer=alice)
    assert on.enable is True and on.reason == ConnectionChange.Reason.PAYMENT
    wait_until(lambda: confirmed(on), timeout=60, watch=[worker],
               message="the payment's change to be confirmed")
    off.refresh_from_db()
    assert off.superseded is True and off.confirmed_at is None
    assert router.secret("alice")["disabled"] == "false"
    assert [call.body for call in router.calls("PATCH")][-1] == {"disabled": "false"}
    alice.refresh_from_db()
    assert alice.is_active is True and alice.network_confirmed_active is True
