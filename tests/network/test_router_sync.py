"""A router's sync against the fake RouterOS: bulk reads, only the differences repaired,
every action recorded, drift reported, foreign state untouched, faults survived."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from billing.connections import connection_change_request
from billing.models import ConnectionChange, Customer, Router, RouterAction, RouterRun
from billing.router_runs import router_run_request, router_runs_resume
from billing.router_sync import router_survey, router_sync_step, routers_sync_all
from billing.routeros import router_client
from core.enums import ConnectionType
from tests.network.fake_routeros import FakeRouterOS
from tests.network.routers import address_customer, package, pppoe_customer, router_record

pytestmark = pytest.mark.django_db

BLOCKED = "billing-blocked"


@pytest.fixture
def second_fake():
    server = FakeRouterOS().start()
    yield server
    server.stop()


def sync(router, captured) -> RouterRun:
    with captured(execute=True):
        run = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
    run.refresh_from_db()
    return run


def actions(router) -> list[tuple[str, str, str]]:
    return sorted(RouterAction.objects.filter(router=router).values_list(
        "action", "target", "outcome"))


def test_a_sync_repairs_only_what_differs_and_records_it(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    pppoe_customer(router, "ok-user")
    fake.add_secret("ok-user", profile="20M")
    unpaid = pppoe_customer(router, "unpaid", active=False)
    fake.add_secret("unpaid", profile="20M")
    fake.add_session("unpaid")
    pppoe_customer(router, "slow")
    fake.add_secret("slow", profile="5M")
    fake.add_secret("someone-elses", disabled=False, profile="default")
    address_customer(router, "10.1.0.5", active=False)
    customer_back = address_customer(router, "10.1.0.6")
    fake.add_address(BLOCKED, "10.1.0.6", comment=f"billing:{customer_back.uid}")
    fake.add_address(BLOCKED, "10.9.9.9", comment="blocked by hand")
    calls_before = len(fake.calls())

    run = sync(router, django_capture_on_commit_callbacks)

    assert run.state == RouterRun.State.SUCCESS, run.error
    assert run.result["checked"] == 5
    assert run.result["changed"] == 4
    assert run.result["failed"] == 0
    # unpaid, slow, the static one to block, the one to unblock, and the secret nobody owns
    assert run.result["drift_before"] == 5
    assert run.result["drift_after"] == 1
    assert fake.secret("unpaid")["disabled"] == "true"
    assert fake.sessions_of("unpaid") == []
    assert fake.secret("slow")["profile"] == "20M"
    assert fake.secret("ok-user")["disabled"] == "false"
    assert (fake.secret("someone-elses")["disabled"], fake.secret("someone-elses")["profile"]) \
        == ("false", "default")
    blocked = {entry["address"]: entry for entry in fake.address_entries(BLOCKED)}
    assert set(blocked) == {"10.1.0.5", "10.9.9.9"}
    assert blocked["10.9.9.9"]["comment"] == "blocked by hand"
    assert actions(router) == sorted([
        ("DISABLE", "unpaid", "OK"), ("DROP_SESSION", "unpaid", "OK"),
        ("SET_PROFILE", "slow", "OK"), ("BLOCK", "10.1.0.5", "OK"),
        ("UNBLOCK", "10.1.0.6", "OK"),
    ])
    router.refresh_from_db()
    assert router.last_sync_status == "SUCCESS"
    assert router.drift_count == 1
    assert router.drift == [{"secret": "someone-elses", "what": ["NO_CUSTOMER"]}]
    assert ConnectionChange.objects.get(customer=unpaid).confirmed_at is not None
    assert Customer.objects.get(pk=unpaid.pk).network_confirmed_active is False
    gets = [call for call in fake.calls()[calls_before:] if call.method == "GET"]
    # two bulk listings of three tables: before and after the repairs
    assert len(gets) == 6, [call.path for call in gets]


def test_the_survey_lists_each_table_once_whatever_the_number_of_customers(fake):
    router = router_record(fake)
    for n in range(300):
        pppoe_customer(router, f"user{n}")
        fake.add_secret(f"user{n}", profile="20M")
    client = router_client(router)
    survey = router_survey(client, router)
    assert survey.checked == 300
    assert survey.drift == []
    assert client.calls == 3


def test_a_second_sync_changes_nothing(fake, django_capture_on_commit_callbacks):
    router = router_record(fake)
    pppoe_customer(router, "unpaid", active=False)
    fake.add_secret("unpaid", profile="20M")
    assert sync(router, django_capture_on_commit_callbacks).result["changed"] == 1
    writes = len([c for c in fake.calls() if c.method != "GET"])

    again = sync(router, django_capture_on_commit_callbacks)

    assert again.result["changed"] == 0
    assert again.result["drift_before"] == 0
    assert len([c for c in fake.calls() if c.method != "GET"]) == writes


def test_a_missing_secret_is_created_with_the_customers_password(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    pppoe_customer(router, "newbie", password="s3cret-pw")
    run = sync(router, django_capture_on_commit_callbacks)
    assert run.result["changed"] == 1
    secret = fake.secret("newbie")
    assert secret["password"] == "s3cret-pw"
    assert secret["profile"] == "20M"
    assert secret["disabled"] == "false"
    assert "s3cret-pw" not in str(run.result)


def test_a_customer_whose_own_change_is_on_its_way_is_left_to_it(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    customer = pppoe_customer(router, "paying", active=False)
    fake.add_secret("paying", profile="20M")
    # A change whose delivery has not come yet (its message is in the queue).
    connection_change_request(customer=customer, enable=False, reason="TOGGLE",
                              requested_by=None, send=False)

    run = sync(router, django_capture_on_commit_callbacks)

    assert run.result["skipped"] == 1
    assert run.result["changed"] == 0
    assert fake.secret("paying")["disabled"] == "false"


def test_a_sync_never_undoes_a_change_confirmed_after_its_listing(
    fake, settings, django_capture_on_commit_callbacks
):
    """The listing saw the customer enabled while the database said suspended; then the
    customer paid and their change was confirmed before the repair came: the repair
    applies the state as of its claim and leaves the router enabled."""
    settings.ROUTER_SYNC_BATCH_SECONDS = 0  # the first step only surveys
    router = router_record(fake)
    customer = pppoe_customer(router, "payer", active=False)
    fake.add_secret("payer", profile="20M")
    with django_capture_on_commit_callbacks(execute=False):
        run = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
    with django_capture_on_commit_callbacks(execute=False):
        router_sync_step(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RouterRun.State.RUNNING
    assert len(run.result["pending"]) == 1
    Customer.objects.filter(pk=customer.pk).update(
        is_active=True, network_confirmed_at=timezone.now(), network_confirmed_active=True
    )
    settings.ROUTER_SYNC_BATCH_SECONDS = 20
    with django_capture_on_commit_callbacks(execute=True):
        router_sync_step(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == RouterRun.State.SUCCESS
    assert fake.secret("payer")["disabled"] == "false"
    assert not RouterAction.objects.filter(action="DISABLE").exists()


def test_an_address_entry_of_ours_that_nobody_wants_is_removed(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    moved = address_customer(router, "10.2.0.2", active=False)
    fake.add_address(BLOCKED, "10.2.0.1", comment=f"billing:{moved.uid}")  # its old address
    run = sync(router, django_capture_on_commit_callbacks)
    assert run.state == RouterRun.State.SUCCESS, run.error
    assert {e["address"] for e in fake.address_entries(BLOCKED)} == {"10.2.0.2"}


def test_an_address_blocked_by_an_entry_we_do_not_own_is_reported_not_touched(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    address_customer(router, "10.3.0.3", active=True)
    fake.add_address(BLOCKED, "10.3.0.3", comment="manual")
    run = sync(router, django_capture_on_commit_callbacks)
    assert run.result["failed"] == 1
    assert run.result["drift_after"] == 1
    assert fake.address_entries(BLOCKED)[0]["comment"] == "manual"


def test_a_router_that_is_down_fails_its_sync_without_blocking_the_others(
    fake, second_fake, django_capture_on_commit_callbacks
):
    down = router_record(fake, name="down", timeout=0.5)
    up = router_record(second_fake, name="up")
    pppoe_customer(down, "a", active=False)
    fake.add_secret("a", profile="20M")
    pppoe_customer(up, "b", active=False)
    second_fake.add_secret("b", profile="20M")
    fake.go_down()

    with django_capture_on_commit_callbacks(execute=True):
        assert routers_sync_all() == 2

    runs = {run.router.name: run for run in RouterRun.objects.select_related("router")}
    assert runs["down"].state == RouterRun.State.FAILED
    assert runs["down"].error
    assert runs["up"].state == RouterRun.State.SUCCESS
    assert second_fake.secret("b")["disabled"] == "true"
    down.refresh_from_db()
    assert down.last_sync_status == "FAILED"
    assert down.consecutive_failures == 1
    assert "router-pass" not in down.last_error

    fake.come_up()
    run = sync(down, django_capture_on_commit_callbacks)
    assert run.state == RouterRun.State.SUCCESS, run.error
    assert fake.secret("a")["disabled"] == "true"
    down.refresh_from_db()
    assert (down.last_sync_status, down.consecutive_failures) == ("SUCCESS", 0)


def test_wrong_credentials_fail_the_sync_and_say_so(fake, django_capture_on_commit_callbacks):
    router = router_record(fake)
    pppoe_customer(router, "a", active=False)
    fake.add_secret("a", profile="20M")
    fake.wrong_credentials()
    run = sync(router, django_capture_on_commit_callbacks)
    assert run.state == RouterRun.State.FAILED
    assert "router-pass" not in run.error
    assert fake.secret("a")["disabled"] == "false"


def test_a_rebooted_router_with_its_state_reverted_is_repaired_by_the_next_sync(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    for n in range(20):
        pppoe_customer(router, f"u{n}", active=n % 2 == 0)
        fake.add_secret(f"u{n}", profile="20M")
    before = fake.snapshot()
    assert sync(router, django_capture_on_commit_callbacks).result["changed"] == 10
    fake.revert(before)  # the router lost what it was told since

    run = sync(router, django_capture_on_commit_callbacks)

    assert run.result["drift_before"] == 10
    assert run.result["changed"] == 10
    assert run.result["drift_after"] == 0
    assert all(fake.secret(f"u{n}")["disabled"] == ("false" if n % 2 == 0 else "true")
               for n in range(20))


def test_a_sync_works_in_steps_and_a_stalled_one_is_resumed(
    fake, settings, django_capture_on_commit_callbacks
):
    settings.ROUTER_SYNC_BATCH_SECONDS = 0  # one repair per step at most
    router = router_record(fake)
    for n in range(3):
        pppoe_customer(router, f"s{n}", active=False)
        fake.add_secret(f"s{n}", profile="20M")
    # The first step's message is lost: nothing runs.
    with django_capture_on_commit_callbacks(execute=False):
        run = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
    assert RouterRun.objects.get(pk=run.pk).state == RouterRun.State.PENDING
    assert router_runs_resume(stale_seconds=60) == 0  # not stalled yet
    RouterRun.objects.filter(pk=run.pk).update(
        last_progress_at=timezone.now() - timedelta(minutes=5)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert router_runs_resume(stale_seconds=60) == 1

    run.refresh_from_db()
    assert run.state == RouterRun.State.SUCCESS, run.error
    assert run.result["changed"] == 3
    assert all(fake.secret(f"s{n}")["disabled"] == "true" for n in range(3))


def test_one_live_sync_per_router(fake, django_capture_on_commit_callbacks):
    router = router_record(fake)
    with django_capture_on_commit_callbacks(execute=False):
        first = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
        second = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
    assert first.pk == second.pk
    assert RouterRun.objects.count() == 1


def test_router_actions_cannot_be_changed_or_deleted(fake, django_capture_on_commit_callbacks):
    if connection.vendor != "postgresql":
        pytest.skip("the guard is a PostgreSQL trigger")
    router = router_record(fake)
    pppoe_customer(router, "x", active=False)
    fake.add_secret("x", profile="20M")
    sync(router, django_capture_on_commit_callbacks)
    action = RouterAction.objects.first()

    with pytest.raises(DatabaseError), transaction.atomic():
        RouterAction.objects.filter(pk=action.pk).update(outcome="FAILED")
    with pytest.raises(DatabaseError), transaction.atomic():
        RouterAction.objects.filter(pk=action.pk).delete()


def test_a_package_profile_is_the_packages_name_when_none_is_set(
    fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    plain = package(name="Gamer 50", profile="")
    pppoe_customer(router, "gamer", package=plain)
    fake.add_secret("gamer", profile="default")
    sync(router, django_capture_on_commit_callbacks)
    assert fake.secret("gamer")["profile"] == "Gamer 50"


def test_customers_of_other_routers_and_without_routers_are_not_this_routers(
    fake, second_fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    other = router_record(second_fake, name="other")
    pppoe_customer(other, "elsewhere", active=False)
    Customer.objects.create(name="Nowhere", package=package(), username="nowhere",
                            connection_type=ConnectionType.PPPOE, is_active=False)
    fake.add_secret("elsewhere", profile="20M")
    fake.add_secret("nowhere", profile="20M")
    run = sync(router, django_capture_on_commit_callbacks)
    assert run.result["checked"] == 0
    assert fake.secret("elsewhere")["disabled"] == "false"
    assert Router.objects.get(pk=router.pk).drift_count == 2
