"""An online payment on real workers, from the bill a bill run issues, through each
fake provider (bKash, Nagad, SSLCommerz) and the fake RouterOS: a suspended customer
pays at the provider and closes the tab (no redirect ever comes); the payments sweep
asks the provider, the money lands once, the network worker switches the connection on
at the router, and the receipt goes out once."""

from decimal import Decimal

import pytest

from billing.models import (
    Collection,
    ConnectionChange,
    Customer,
    Notification,
    OnlinePayment,
    Package,
    Payment,
)
from billing.online_payments import online_payment_start
from core.enums import ConnectionType, OnlineState, Status, UserKind
from core.queue import publish
from tests.network.routers import router_record
from tests.payments.fake_bkash import FakeBkash
from tests.payments.fake_nagad import FakeNagad
from tests.payments.fake_sslcommerz import FakeSslcommerz
from tests.worker.conftest import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


FAKES = {"BKASH": FakeBkash, "NAGAD": FakeNagad, "SSLCOMMERZ": FakeSslcommerz}


@pytest.fixture(params=sorted(FAKES))
def provider(request, settings):
    """(code, its fake started, the worker's environment for it)."""
    fake = FAKES[request.param]().start()
    values = fake.settings()
    for name, value in values.items():
        setattr(settings, name, value)
    env = {name: value for name, value in values.items() if not isinstance(value, list)}
    if request.param == "BKASH":
        env["BKASH_SNS_CERT_HOSTS"] = r"127\.0\.0\.1"
    yield request.param, fake, {**env, "ONLINE_PAYMENT_STALE_SECONDS": 0}
    fake.stop()


def test_a_suspended_customer_who_pays_and_closes_the_tab_is_reconnected(
    client_as, start_worker, router, provider
):
    code, fake, env = provider
    api, _ = client_as(UserKind.MANAGER)
    package = Package.objects.create(name="Home", speed_mbps=20, price="500.00",
                                     router_profile="default")
    alice = Customer.objects.create(
        name="Alice", phone="01700000001", package=package, username="alice",
        password="pppoe-pass", connection_type=ConnectionType.PPPOE,
        router=router_record(router, timeout=2),
    )
    router.add_secret("alice")
    worker = start_worker(**env)
    # The month's bill is issued by a bill run on the worker; unpaid, alice is switched off.
    run = api.post("/customers/bills/generate?month=MAY&year=2026")
    assert run.status_code == 202, run.content
    wait_until(lambda: Notification.objects.filter(
        customer=alice, event=Notification.Event.BILL_ISSUED).exists(), timeout=60,
        message="the bill issued", watch=[worker])
    assert Payment.objects.get(customer=alice).bill_amount == Decimal("500.00")
    toggled = api.post("/customers/status/toggle", {"username": "alice", "is_active": False})
    assert toggled.status_code == 200, toggled.content
    wait_until(lambda: router.secret("alice")["disabled"] == "true", timeout=60,
               message="alice switched off", watch=[worker])

    online = online_payment_start(customer=Customer.objects.get(pk=alice.pk), provider=code)
    fake.customer_pays(online.provider_payment_id)  # paid; the tab is closed
    publish("payments.online_payments_sweep")

    wait_until(lambda: router.secret("alice")["disabled"] == "false", timeout=90,
               message="alice switched on again", watch=[worker])
    online.refresh_from_db()
    assert online.state == OnlineState.SUCCEEDED
    assert Customer.objects.get(pk=alice.pk).status == Status.ACTIVE
    lines = Collection.objects.filter(online_payment=online)
    assert [line.amount for line in lines] == [online.amount]
    assert Payment.objects.get(customer=alice).paid
    wait_until(lambda: Notification.objects.filter(event_key=f"online:{online.pk}",
                                                   sent_at__isnull=False).exists(),
               timeout=60, message="the receipt sent", watch=[worker])
    # Another sweep and the customer's late redirect change nothing.
    publish("payments.online_payments_sweep")
    wait_until(lambda: ConnectionChange.objects.filter(customer=alice,
                                                       confirmed_at__isnull=True).count() == 0,
               timeout=60, message="every change confirmed", watch=[worker])
    assert Collection.objects.filter(online_payment=online).count() == 1
    if code == "BKASH":
        assert fake.payments[online.provider_payment_id].executions == 1
    assert OnlinePayment.objects.get(pk=online.pk).state == OnlineState.SUCCEEDED


@pytest.mark.parametrize("bkash_has_the_money", [False, True], ids=["approved", "executed"])
def test_a_payments_worker_killed_while_asking_bkash_is_resumed_and_credits_once(
    start_worker, settings, bkash_has_the_money
):
    """SIGKILL to the payments worker while it waits on bKash, with the payment approved
    (bKash executes when asked) or already executed (bKash holds the money; our record of
    it was never written): a new worker and the next sweep credit it exactly once."""
    fake = FakeBkash().start()
    try:
        env = {name: value for name, value in fake.settings().items()
               if not isinstance(value, list)}
        for name, value in fake.settings().items():
            setattr(settings, name, value)
        env.update(ONLINE_PAYMENT_STALE_SECONDS=0, BKASH_TIMEOUT_SECONDS=60)
        package = Package.objects.create(name="Home", speed_mbps=20, price="500.00")
        bob = Customer.objects.create(name="Bob", phone="01700000002", package=package)
        Payment.objects.create(customer=bob, billing_year=2026, billing_month="MAY",
                               bill_amount="500.00")
        online = online_payment_start(customer=bob, provider="BKASH")
        fake.customer_pays(online.provider_payment_id)
        if bkash_has_the_money:
            fake.complete(online.provider_payment_id)
        fake.hanging = True
        asked = fake.arrivals
        first = start_worker(**env)
        publish("payments.online_payments_sweep")
        wait_until(lambda: fake.arrivals > asked, timeout=60, watch=[first],
                   message="the worker to ask bKash")
        first.kill()
        assert OnlinePayment.objects.get(pk=online.pk).state == OnlineState.REDIRECTED
        fake.recover()

        second = start_worker(**env)
        publish("payments.online_payments_sweep")
        wait_until(lambda: OnlinePayment.objects.get(pk=online.pk).state
                   == OnlineState.SUCCEEDED, timeout=60, watch=[second],
                   message="the payment credited after the kill")
        publish("payments.online_payments_sweep")  # and once more: nothing changes
        lines = Collection.objects.filter(online_payment=online)
        assert [line.amount for line in lines] == [online.amount]
        assert fake.payments[online.provider_payment_id].executions == 1
        assert Payment.objects.get(customer=bob).paid
    finally:
        fake.stop()
