"""A connection change on a real worker, against the fake RouterOS server: the router
fails twice, then answers, and the worker's retries bring it in sync."""

import pytest

from billing.models import ConnectionChange, Customer, Package
from core.enums import ConnectionType, UserKind
from tests.network.fake_routeros import FakeRouterOS
from tests.worker.conftest import wait_task

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def router():
    fake = FakeRouterOS(user="api", password="router-pass").start()
    yield fake
    fake.stop()


def test_a_router_that_fails_twice_then_answers_ends_in_sync(client_as, start_worker, router):
    api, _ = client_as(UserKind.MANAGER)
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00")
    customer = Customer.objects.create(
        name="Alice", phone="01700000001", package=package, username="alice",
        password="pppoe-pass", connection_type=ConnectionType.PPPOE,
    )
    router.add_secret("alice")
    router.add_session("alice")
    worker = start_worker(
        NETWORK_BACKEND="mikrotik", MIKROTIK_URL=router.root_url, MIKROTIK_USER=router.user,
        MIKROTIK_PASSWORD=router.password, MIKROTIK_TIMEOUT_SECONDS=2,
        NETWORK_RETRY_BASE_SECONDS=0.2,
    )
    router.fail_next(2, status=503)

    response = api.post("/customers/status/toggle", {"username": "alice", "is_active": False})

    assert response.status_code == 200, response.content
    task_id = response.json()["task_id"]
    body = wait_task(api, task_id, timeout=60, watch=[worker])
    assert body["status"] == "SUCCESS", body
    assert body["result"]["attempts"] == 3
    assert body["result"]["last_error"] == ""

    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []
    failed = [call for call in router.calls() if call.status == 503]
    assert len(failed) == 2
    assert [call.body for call in router.calls("PATCH")] == [{"disabled": "true"}]
    change = ConnectionChange.objects.get(task_id=task_id)
    assert change.confirmed_at is not None and change.attempts == 3
    customer.refresh_from_db()
    assert customer.is_active is False
    assert customer.network_confirmed_active is False
    assert customer.network_confirmed_at == change.confirmed_at
    assert customer.network_last_error == ""
    # The worker retried the task itself (twice), with the error it met.
    log = worker.output()
    assert log.count(f"connection_change_apply[{task_id}] retry") == 2, worker.tail()
