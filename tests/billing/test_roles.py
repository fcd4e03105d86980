"""The contract's Roles table for billing, and what a CUSTOMER may see."""

from decimal import Decimal

import pytest

from billing.models import Customer, Payment, Router, RouterRun
from core.enums import BillingMonth, Status, UserKind
from tests.billing.factories import (
    CustomerFactory,
    PackageFactory,
    PaymentFactory,
    RouterFactory,
)
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db

@pytest.fixture
def world(make_user):
    """Two customers with a record each; ``own`` is linked to a CUSTOMER user."""
    package = PackageFactory()
    owner = make_user(kind=UserKind.CUSTOMER)
    own = CustomerFactory(package=package, user=owner, username="own")
    other = CustomerFactory(package=package, username="other")
    own_payment = PaymentFactory(customer=own, billing_month=BillingMonth.JANUARY)
    other_payment = PaymentFactory(customer=other, billing_month=BillingMonth.JANUARY)
    return {"package": package, "owner": owner, "own": own, "other": other,
            "own_payment": own_payment, "other_payment": other_payment}


def customer_body(package, **change):
    return {"name": "New", "package_id": package.id, **change}


def payment_body(customer, **change):
    return {"customer_id": customer.id, "amount": "100", "billing_month": "MARCH",
            "payment_method": "CASH", **change}


# CUSTOMER --------------------------------------------------------------------------


@pytest.fixture
def as_owner(world):
    return ApiClient().bearer(world["owner"])


def test_customer_sees_only_own_record_on_lists(as_owner, world):
    customers = as_owner.get("/customers")
    payments = as_owner.get("/payments")
    by_package = as_owner.get(f"/packages/{world['package'].uid}/customers")

    assert customers.status_code == 200, customers.content
    assert [row["uid"] for row in customers.json()["results"]] == [str(world["own"].uid)]
    assert customers.json()["count"] == 1
    assert payments.status_code == 200, payments.content
    assert [row["uid"] for row in payments.json()["results"]] == [
        str(world["own_payment"].uid)
    ]
    assert by_package.status_code == 200
    assert [row["uid"] for row in by_package.json()["results"]] == [str(world["own"].uid)]
    # Filters cannot widen the view.
    widened = as_owner.get("/payments", {"customer_id": world["other"].id})
    assert widened.json()["count"] == 0
    widened = as_owner.get("/customers", {"phone": world["other"].phone})
    assert widened.json()["count"] == 0


def test_customer_reads_own_record_and_payments(as_owner, world):
    detail = as_owner.get(f"/customers/{world['own'].uid}")
    assert detail.status_code == 200, detail.content
    assert detail.json()["user"]["id"] == world["owner"].id
    payment = as_owner.get(f"/payments/{world['own_payment'].uid}")
    assert payment.status_code == 200, payment.content
    listed = as_owner.get(f"/customers/{world['own'].uid}/payments")
    assert listed.status_code == 200
    assert listed.json()["count"] == 1


def test_customer_gets_404_for_anothers_record_and_payment(as_owner, world):
    for path in (f"/customers/{world['other'].uid}",
                 f"/customers/{world['other'].uid}/payments",
                 f"/payments/{world['other_payment'].uid}"):
        response = as_owner.get(path)
        assert response.status_code == 404, (path, response.content)
        assert response.json() == {"detail": "Not found."}


def test_customer_cannot_write(as_owner, world):
    own, other = world["own"], world["other"]
    attempts = [
        as_owner.post("/payments", payment_body(own)),
        as_owner.post(f"/customers/{own.uid}/payments", payment_body(own)),
        as_owner.put(f"/payments/{world['own_payment'].uid}",
                     {"amount": "0", "billing_month": "JANUARY", "payment_method": "CASH",
                      "paid": True}),
        as_owner.delete(f"/payments/{world['own_payment'].uid}"),
        as_owner.post("/customers", customer_body(world["package"])),
        as_owner.put(f"/customers/{own.uid}", customer_body(world["package"])),
        as_owner.delete(f"/customers/{own.uid}"),
        as_owner.delete(f"/customers/{other.uid}"),
        as_owner.post("/customers/status/toggle", {"username": "own", "is_active": False}),
        as_owner.get("/dashboard"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert Payment.objects.count() == 2
    assert Customer.objects.filter(status=Status.ACTIVE).count() == 2
    own.refresh_from_db()
    assert own.name != "New" and own.is_active is True


# OTHER ------------------------------------------------------------------------------


def test_other_is_refused_customers_payments_dashboard(client_as, world):
    client, _ = client_as(UserKind.OTHER)
    attempts = [
        client.get("/customers"),
        client.get(f"/customers/{world['own'].uid}"),
        client.get(f"/customers/{world['own'].uid}/payments"),
        client.post("/customers", customer_body(world["package"])),
        client.get("/payments"),
        client.get(f"/payments/{world['own_payment'].uid}"),
        client.post("/payments", payment_body(world["own"])),
        client.get("/dashboard"),
        client.get(f"/packages/{world['package'].uid}/customers"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert all(set(r.json()) == {"detail"} for r in attempts)


def test_anonymous_is_401_on_protected_billing_routes(api, world):
    for path in ("/customers", "/payments", "/dashboard",
                 f"/customers/{world['own'].uid}", f"/payments/{world['own_payment'].uid}"):
        response = api.get(path)
        assert response.status_code == 401, path
        assert "WWW-Authenticate" in response
    assert api.get("/packages").status_code == 200


# STAFF ------------------------------------------------------------------------------


def test_staff_reads_and_creates_customers_but_cannot_change_them(staff, world):
    client, _ = staff
    own = world["own"]
    assert client.get("/customers").json()["count"] == 2
    assert client.get(f"/customers/{own.uid}").status_code == 200
    created = client.post("/customers", customer_body(world["package"], phone="0155"))
    assert created.status_code == 201, created.content

    put = client.put(f"/customers/{own.uid}", customer_body(world["package"]))
    delete = client.delete(f"/customers/{own.uid}")
    toggle = client.post("/customers/status/toggle", {"username": "own", "is_active": False})
    assert (put.status_code, delete.status_code, toggle.status_code) == (403, 403, 403)
    own.refresh_from_db()
    assert own.name != "New" and own.status == Status.ACTIVE and own.is_active is True


def test_staff_reads_creates_updates_payments_but_cannot_void(staff, world):
    client, user = staff
    assert client.get("/payments").json()["count"] == 2
    created = client.post("/payments", payment_body(world["own"]))
    assert created.status_code == 201, created.content
    uid = created.json()["uid"]
    updated = client.put(f"/payments/{uid}", {"amount": "150", "billing_month": "MARCH",
                                              "payment_method": "CASH", "paid": False})
    assert updated.status_code == 200, updated.content
    assert updated.json()["amount"] == "150.00"

    voided = client.delete(f"/payments/{uid}")
    assert voided.status_code == 403, voided.content
    payment = Payment.objects.get(uid=uid)
    assert payment.voided_at is None
    assert payment.amount == Decimal("150.00")


def test_staff_cannot_write_packages(staff, world):
    client, _ = staff
    package = world["package"]
    body = {"name": "X", "speed_mbps": 1, "price": "1"}
    codes = [client.post("/packages", body).status_code,
             client.put(f"/packages/{package.uid}", body).status_code,
             client.delete(f"/packages/{package.uid}").status_code]
    assert codes == [403, 403, 403]


# Dashboard --------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status", [(UserKind.SUPER_ADMIN, 200), (UserKind.ADMIN, 200),
                                          (UserKind.MANAGER, 200), (UserKind.STAFF, 200),
                                          (UserKind.CUSTOMER, 403), (UserKind.OTHER, 403)])
def test_dashboard_roles(client_as, kind, status):
    client, _ = client_as(kind)
    assert client.get("/dashboard").status_code == status


# Managers and admins ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN, UserKind.MANAGER])
def test_managers_do_everything_on_customers_and_payments(client_as, world, kind):
    client, _ = client_as(kind)
    own = world["own"]
    assert client.put(f"/customers/{own.uid}",
                      customer_body(world["package"])).status_code == 200
    assert client.post("/customers/status/toggle",
                       {"username": "other", "is_active": False}).status_code == 200
    assert client.delete(f"/payments/{world['own_payment'].uid}").status_code == 204
    assert client.delete(f"/customers/{own.uid}").status_code == 204
    assert client.get("/customers").json()["count"] == 1
    assert client.get("/payments").json()["count"] == 1


# Routers ----------------------------------------------------------------------------


def router_attempts(client, router):
    body = {"name": "edge-9", "host": "10.9.9.9", "username": "api", "password": "pw"}
    return [
        client.get("/routers"),
        client.get(f"/routers/{router.uid}"),
        client.get(f"/routers/{router.uid}/drift"),
        client.post("/routers", body),
        client.put(f"/routers/{router.uid}", {**body, "name": "renamed"}),
        client.post(f"/routers/{router.uid}/sync"),
        client.post(f"/routers/{router.uid}/import", {"dry_run": True}),
        client.delete(f"/routers/{router.uid}"),
    ]


@pytest.mark.parametrize("kind, status", [(UserKind.MANAGER, 403), (UserKind.STAFF, 403),
                                          (UserKind.OTHER, 403), (UserKind.CUSTOMER, 404)])
def test_only_admins_reach_routers(client_as, kind, status):
    """A CUSTOMER is not told routers exist (404); other kinds are refused (403)."""
    router = RouterFactory(name="edge-1")
    client, _ = client_as(kind)
    attempts = router_attempts(client, router)
    assert [r.status_code for r in attempts] == [status] * len(attempts)
    router.refresh_from_db()
    assert (router.name, router.status) == ("edge-1", Status.ACTIVE)
    assert Router.objects.count() == 1
    assert not RouterRun.objects.exists()


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN])
def test_admins_do_everything_on_routers(client_as, kind):
    router = RouterFactory(name="edge-1")
    client, _ = client_as(kind)
    codes = [r.status_code for r in router_attempts(client, router)]
    assert codes == [200, 200, 200, 201, 200, 202, 202, 204]
    router.refresh_from_db()
    assert (router.name, router.status) == ("renamed", Status.REMOVED)
    assert RouterRun.objects.filter(router=router).count() == 2


def test_anonymous_is_401_on_routers(api):
    router = RouterFactory()
    for response in (api.get("/routers"), api.get(f"/routers/{router.uid}"),
                     api.post(f"/routers/{router.uid}/sync")):
        assert response.status_code == 401
