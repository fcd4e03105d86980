"""Router syncs and imports on a real worker against fake routers (REST and the classic
API): several routers synced at once with one down, one hanging and one reverted by a
reboot; a worker killed mid-sync; an import dry run, then the import, then again."""

import time

import pytest

from billing.connections import connection_changes_resend
from billing.models import ConnectionChange, Customer, Router, RouterAction, RouterRun
from billing.router_runs import router_runs_resume
from core.enums import RouterKind, UserKind
from tests.network.fake_routeros import FakeRouterOS
from tests.network.fake_routeros_api import FakeRouterOSApi
from tests.network.routers import package, router_record
from tests.worker.conftest import wait_task, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CUSTOMERS_PER_ROUTER = 400


@pytest.fixture
def fakes():
    started = [FakeRouterOS().start() for _ in range(4)]
    api = FakeRouterOSApi(started[3]).start()
    yield started, api
    api.stop()
    for fake in started:
        fake.stop()


def populate(router: Router, fake: FakeRouterOS, prefix: str) -> list[str]:
    """Customers on ``router`` whose secrets are on ``fake``; every tenth is suspended in
    billing but enabled on the router (drift to repair)."""
    names = fake.bulk_secrets(CUSTOMERS_PER_ROUTER, prefix=prefix, profile="20M")
    home = package()
    Customer.objects.bulk_create([
        Customer(name=name, username=name, password="pppoe-pass", package=home,
                 connection_type="PPPoE", router=router, is_active=n % 10 != 0)
        for n, name in enumerate(names)
    ])
    return names


def suspended(names: list[str]) -> list[str]:
    return [name for n, name in enumerate(names) if n % 10 == 0]


def sync(api, router: Router) -> str:
    response = api.post(f"/routers/{router.uid}/sync")
    assert response.status_code == 202, response.content
    return response.json()["task_id"]


def test_many_routers_sync_at_once_and_a_failing_one_holds_up_none(
    client_as, start_worker, fakes
):
    (rest_a, down, hanging, behind_api), api_fake = fakes
    routers = {
        "a": router_record(rest_a, name="a"),
        "down": router_record(down, name="down", timeout=1),
        "hanging": router_record(hanging, name="hanging", timeout=1),
        "api": router_record(behind_api, name="api", kind=RouterKind.ROUTEROS_API,
                             port=api_fake.port),
    }
    names = {key: populate(router, fake, f"{key}-") for (key, router), fake in
             zip(routers.items(), (rest_a, down, hanging, behind_api), strict=True)}
    rebooted_state = rest_a.snapshot()
    admin, _ = client_as(UserKind.ADMIN)
    worker = start_worker(concurrency=4, ROUTER_SYNC_BATCH_SECONDS=2)
    down.go_down()
    hanging.delay = 30

    tasks = {key: sync(admin, router) for key, router in routers.items()}
    for key in ("a", "api"):
        body = wait_task(admin, tasks[key], timeout=120, watch=[worker])
        assert body["status"] == "SUCCESS", body
        result = body["result"]
        assert (result["checked"], result["drift_before"], result["changed"],
                result["drift_after"]) == (CUSTOMERS_PER_ROUTER, 40, 40, 0), result
    for key in ("down", "hanging"):
        body = wait_task(admin, tasks[key], timeout=120, watch=[worker])
        assert body["status"] == "FAILURE", body
        assert "router-pass" not in body["result"]["error"]
    assert all(rest_a.secret(name)["disabled"] == "true" for name in suspended(names["a"]))
    assert all(behind_api.secret(name)["disabled"] == "true"
               for name in suspended(names["api"]))
    failing = Router.objects.get(name="down")
    assert (failing.last_sync_status, failing.consecutive_failures) == ("FAILED", 1)
    assert admin.get(f"/routers/{failing.uid}").json()["last_sync_status"] == "FAILED"

    # The router that was down answers again; the one rebooted lost what it was told.
    down.come_up()
    hanging.recover()
    rest_a.revert(rebooted_state)
    again = {key: sync(admin, routers[key]) for key in ("a", "down", "hanging")}
    for key, task_id in again.items():
        body = wait_task(admin, task_id, timeout=120, watch=[worker])
        assert body["status"] == "SUCCESS", (key, body)
        assert body["result"]["drift_after"] == 0, (key, body)
    for fake, key in ((rest_a, "a"), (down, "down"), (hanging, "hanging")):
        assert all(fake.secret(name)["disabled"] == "true" for name in suspended(names[key]))
        assert all(fake.secret(name)["disabled"] == "false"
                   for name in names[key] if name not in suspended(names[key]))
    # Never flapped: nobody active in billing was ever disabled, nobody suspended enabled.
    assert not RouterAction.objects.filter(action="ENABLE").exists()
    disabled = RouterAction.objects.filter(action="DISABLE", outcome="OK")
    assert disabled.count() == 40 * 5  # a, api, down, hanging once each; a again after reboot


def test_a_sync_whose_worker_is_killed_is_resumed_and_ends_right(
    client_as, start_worker, fakes
):
    (fake, *_), _api = fakes
    router = router_record(fake, calls_per_second=20)
    names = populate(router, fake, "k-")
    admin, _ = client_as(UserKind.ADMIN)
    env = {"ROUTER_SYNC_BATCH_SECONDS": 1, "NETWORK_ATTEMPT_SECONDS": 2}
    first = start_worker(**env)
    task_id = sync(admin, router)
    wait_until(lambda: RouterAction.objects.filter(router=router).count() >= 5, timeout=60,
               watch=[first], message="the sync to start repairing")
    first.kill()
    second = start_worker(**env)
    started = time.monotonic()
    while RouterRun.objects.get(task_id=task_id).state not in ("SUCCESS", "FAILED"):
        router_runs_resume(stale_seconds=2)
        time.sleep(0.5)
        assert time.monotonic() - started < 120, second.tail()
    run = RouterRun.objects.get(task_id=task_id)
    assert run.state == "SUCCESS", run.error
    # At most the repair at the router when the worker died is left, to its own change,
    # which the change sweep resumes once its lease is over.
    assert run.result["drift_after"] <= 1, run.result

    def all_suspended_disabled() -> bool:
        connection_changes_resend(stale_seconds=1)
        return all(fake.secret(name)["disabled"] == "true" for name in suspended(names))

    wait_until(all_suspended_disabled, timeout=60, watch=[second],
               message="every suspended customer disabled")
    # Every suspended customer's repair confirmed once: none repeated by the resumed run.
    repairs = ConnectionChange.objects.filter(reason="SYNC", confirmed_at__isnull=False)
    def all_confirmed() -> bool:
        connection_changes_resend(stale_seconds=1)  # the minute sweep, sped up
        return repairs.count() == len(suspended(names))

    wait_until(all_confirmed, timeout=30, watch=[second],
               message=lambda: f"every repair confirmed: {repairs.count()} confirmed, "
               f"{ConnectionChange.objects.filter(reason='SYNC').count()} in all")
    assert not ConnectionChange.objects.filter(confirmed_at__isnull=True).exists()


def test_an_import_dry_run_then_the_import_then_again(client_as, start_worker, fakes):
    (fake, *_), _api = fakes
    router = router_record(fake)
    package()
    fake.bulk_secrets(300, prefix="imp-", profile="20M")
    fake.add_secret("odd", profile="no-such-profile")
    admin, _ = client_as(UserKind.ADMIN)
    worker = start_worker()

    def run_import(dry_run: bool) -> dict:
        response = admin.post(f"/routers/{router.uid}/import", {"dry_run": dry_run})
        assert response.status_code == 202, response.content
        body = wait_task(admin, response.json()["task_id"], timeout=120, watch=[worker])
        assert body["status"] == "SUCCESS", body
        return body["result"]

    dry = run_import(True)
    assert (dry["would_create"], dry["would_update"], dry["unchanged"]) == (300, 0, 0)
    assert dry["conflicts"] == [{"username": "odd",
                                 "reason": "profile 'no-such-profile' matches no package"}]
    assert not Customer.objects.exists()

    done = run_import(False)
    assert (done["created"], done["updated"], done["unchanged"]) == (300, 0, 0)
    assert Customer.objects.filter(router=router).count() == 300
    assert not ConnectionChange.objects.exists()

    again = run_import(False)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 300)
    assert Customer.objects.count() == 300
