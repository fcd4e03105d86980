"""The broker stopped during requests (a private redis-server the test stops): requests
still answer, what they asked for is kept, and it is carried out once the broker is back."""

import time

import pytest

from billing import bills
from billing.connections import connection_changes_resend
from billing.models import BillRun, ConnectionChange, Customer, Payment
from core.enums import UserKind
from core.queue import publish
from tests.worker.conftest import seed_customers, wait_task

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MONTH, YEAR = "APRIL", 2030


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_requests_while_the_broker_is_down_are_carried_out_once_it_is_back(
    client_as, producer, private_redis, start_worker
):
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(300)
    alice = Customer.objects.filter(pk__in=seeded.billable).order_by("pk").first()
    Customer.objects.filter(pk=alice.pk).update(username="alice")
    producer.point_at(private_redis.url)
    # The web process has a pooled connection to the broker when the broker goes away.
    assert publish("notifications.dispatch") is True
    private_redis.stop()

    generate, took = timed(
        lambda: api.post(f"/customers/bills/generate?month={MONTH}&year={YEAR}")
    )

    print(f"generate answered {generate.status_code} in {took:.2f}s")
    assert took < 15, f"the request waited {took:.1f}s on a broker that is down"
    if generate.status_code == 503:  # refused, and nothing recorded
        assert not BillRun.objects.exists()
        task_id = None
    else:  # accepted, and recorded for the sweep
        assert generate.status_code == 202, generate.content
        task_id = generate.json()["task_id"]
        run = BillRun.objects.get(task_id=task_id)
        assert (run.state, run.enqueued) == (BillRun.State.PENDING, False)
        status = api.get(f"/tasks/{task_id}")
        assert status.status_code == 200 and status.json()["status"] == "PENDING"
    # Reads do not need the broker.
    for path in ("/customers", "/payments", "/dashboard"):
        assert api.get(path).status_code == 200, path
    # A toggle is kept too, for the resend sweep.
    toggle, took = timed(lambda: api.post(
        "/customers/status/toggle", {"username": "alice", "is_active": False}
    ))
    print(f"toggle answered {toggle.status_code} in {took:.2f}s")
    assert took < 15
    assert toggle.status_code == 200, toggle.content
    change = ConnectionChange.objects.get(task_id=toggle.json()["task_id"])
    assert change.confirmed_at is None and change.attempts == 0
    assert Customer.objects.get(pk=alice.pk).is_active is False

    # The broker is back (same address), with a worker on it.
    private_redis.start()
    worker = start_worker(broker_url=private_redis.url)
    if task_id is None:
        retried = api.post(f"/customers/bills/generate?month={MONTH}&year={YEAR}")
        assert retried.status_code == 202, retried.content
        task_id = retried.json()["task_id"]
    else:
        assert bills.bill_runs_resume() == 1
    assert connection_changes_resend(stale_seconds=0) == 1

    body = wait_task(api, task_id, timeout=90, watch=[worker])
    assert body["status"] == "SUCCESS", body
    assert body["result"]["created"] == len(seeded.billable) - 1  # alice is switched off
    assert body["result"]["missing"] == 0
    billed = set(
        Payment.objects.filter(billing_month=MONTH, billing_year=YEAR)
        .values_list("customer_id", flat=True)
    )
    assert billed == set(seeded.billable) - {alice.pk}
    toggled = wait_task(api, change.task_id, timeout=30, watch=[worker])
    assert toggled["status"] == "SUCCESS", toggled
    alice.refresh_from_db()
    assert alice.network_confirmed_active is False
    # Nothing is sent twice: the sweeps find nothing more to do.
    assert bills.bill_runs_resume() == 0
    assert connection_changes_resend(stale_seconds=0) == 0
