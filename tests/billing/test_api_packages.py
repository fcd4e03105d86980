"""Packages: public reads, writes by ADMIN/MANAGER, soft delete by ADMIN, validation."""

from decimal import Decimal

import pytest

from billing.models import Package
from core.enums import Status, UserKind
from tests.billing.factories import CustomerFactory, PackageFactory
from tests.billing.shapes import (
    CUSTOMER_LIST_KEYS,
    PACKAGE_DETAIL_KEYS,
    PACKAGE_LIST_KEYS,
    assert_customer,
    assert_package,
    assert_page,
)

pytestmark = pytest.mark.django_db

BODY = {"name": "Fiber 50", "speed_mbps": 50, "price": "1200.00", "description": "Fast"}


# Public reads -----------------------------------------------------------------


def test_list_is_public_with_list_shape_and_customer_count(api):
    package = PackageFactory(name="Home 10", price=Decimal("500"))
    CustomerFactory.create_batch(2, package=package)
    CustomerFactory(package=package, status=Status.REMOVED)
    PackageFactory(name="Empty")

    response = api.get("/packages")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_page(body)
    assert body["count"] == 2
    assert body["next"] is None and body["previous"] is None
    by_name = {row["name"]: row for row in body["results"]}
    for row in body["results"]:
        assert_package(row, PACKAGE_LIST_KEYS)
    assert by_name["Home 10"]["price"] == "500.00"
    assert by_name["Home 10"]["customer_count"] == 2  # the REMOVED customer is not counted
    assert by_name["Empty"]["customer_count"] == 0
    # newest first
    assert [row["name"] for row in body["results"]] == ["Empty", "Home 10"]


def test_detail_is_public_with_detail_shape(api):
    package = PackageFactory(name="Home 30", speed_mbps=30, price=Decimal("750.5"),
                             description="Thirty")
    CustomerFactory(package=package)

    response = api.get(f"/packages/{package.uid}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_package(body, PACKAGE_DETAIL_KEYS)
    assert body == {
        **body,
        "id": package.id,
        "uid": str(package.uid),
        "name": "Home 30",
        "speed_mbps": 30,
        "price": "750.50",
        "description": "Thirty",
        "customer_count": 1,
    }


def test_removed_packages_are_hidden(api):
    removed = PackageFactory(status=Status.REMOVED)
    PackageFactory()

    listed = api.get("/packages").json()
    assert removed.uid not in {row["uid"] for row in listed["results"]}
    assert listed["count"] == 1
    response = api.get(f"/packages/{removed.uid}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_unknown_or_malformed_uid_is_404(api):
    assert api.get("/packages/7b0c3c7e-0000-4000-8000-000000000000").status_code == 404
    assert api.get("/packages/not-a-uuid").status_code == 404


# Create / update ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER, UserKind.SUPER_ADMIN])
def test_create_by_admin_or_manager(client_as, kind):
    client, _ = client_as(kind)

    response = client.post("/packages", BODY)

    assert response.status_code == 201, response.content
    body = response.json()
    assert_package(body, PACKAGE_DETAIL_KEYS)
    assert {k: body[k] for k in ("name", "speed_mbps", "price", "description")} == BODY
    assert body["customer_count"] == 0
    package = Package.objects.get(uid=body["uid"])
    assert package.id == body["id"]
    assert package.price == Decimal("1200.00")
    assert package.status == Status.ACTIVE


def test_create_accepts_price_as_number(admin_client):
    response = admin_client.post("/packages", {**BODY, "price": 999.5})
    assert response.status_code == 201, response.content
    assert response.json()["price"] == "999.50"
    assert Package.objects.get().price == Decimal("999.50")


@pytest.mark.parametrize("kind", [UserKind.STAFF, UserKind.CUSTOMER, UserKind.OTHER])
def test_create_update_forbidden_for_others(client_as, kind):
    client, _ = client_as(kind)
    package = PackageFactory(name="Keep")

    created = client.post("/packages", BODY)
    updated = client.put(f"/packages/{package.uid}", BODY)

    assert created.status_code == 403, created.content
    assert set(created.json()) == {"detail"}
    assert updated.status_code == 403, updated.content
    assert Package.objects.count() == 1
    package.refresh_from_db()
    assert package.name == "Keep"


def test_create_needs_authentication(api):
    response = api.post("/packages", BODY)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert not Package.objects.exists()


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER])
def test_update(client_as, kind):
    client, _ = client_as(kind)
    package = PackageFactory(name="Old", speed_mbps=10, price=Decimal("300"))
    CustomerFactory(package=package)

    response = client.put(
        f"/packages/{package.uid}",
        {"name": "New", "speed_mbps": 15, "price": "350", "description": "d", "id": 999},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert_package(body, PACKAGE_DETAIL_KEYS)
    assert body["id"] == package.id
    assert body["name"] == "New"
    assert body["price"] == "350.00"
    assert body["customer_count"] == 1
    package.refresh_from_db()
    assert (package.name, package.speed_mbps, package.price, package.description) == (
        "New", 15, Decimal("350.00"), "d",
    )


def test_update_keeping_own_name_is_not_a_duplicate(admin_client):
    package = PackageFactory(name="Same")
    response = admin_client.put(f"/packages/{package.uid}", {**BODY, "name": "Same"})
    assert response.status_code == 200, response.content


def test_update_of_removed_package_is_404(admin_client):
    package = PackageFactory(status=Status.REMOVED)
    assert admin_client.put(f"/packages/{package.uid}", BODY).status_code == 404


# Validation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Fiber 50", "fiber 50", "FIBER 50"])
def test_duplicate_name_is_400_on_name(admin_client, name):
    PackageFactory(name="Fiber 50")
    response = admin_client.post("/packages", {**BODY, "name": name})
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["name"]
    assert Package.objects.count() == 1


def test_duplicate_name_on_update_is_400(admin_client):
    PackageFactory(name="Taken")
    package = PackageFactory(name="Mine")
    response = admin_client.put(f"/packages/{package.uid}", {**BODY, "name": "Taken"})
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["name"]
    package.refresh_from_db()
    assert package.name == "Mine"


def test_name_of_removed_package_may_be_reused(admin_client):
    PackageFactory(name="Fiber 50", status=Status.REMOVED)
    response = admin_client.post("/packages", BODY)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "change, field",
    [
        ({"price": "-1"}, "price"),
        ({"price": -0.01}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "1.001"}, "price"),
        ({"speed_mbps": 0}, "speed_mbps"),
        ({"speed_mbps": -5}, "speed_mbps"),
        ({"speed_mbps": "fast"}, "speed_mbps"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
    ],
)
def test_invalid_values_are_400_on_the_field(admin_client, change, field):
    response = admin_client.post("/packages", {**BODY, **change})
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field], body
    assert isinstance(body[field], list) and all(isinstance(m, str) for m in body[field])
    assert not Package.objects.exists()


@pytest.mark.parametrize("missing", ["name", "speed_mbps", "price"])
def test_missing_required_field_is_400(admin_client, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    response = admin_client.post("/packages", body)
    assert response.status_code == 400, response.content
    assert response.json() == {missing: ["This field is required."]}


def test_price_zero_is_allowed(admin_client):
    response = admin_client.post("/packages", {**BODY, "price": 0})
    assert response.status_code == 201, response.content
    assert response.json()["price"] == "0.00"


def test_broken_json_is_400(admin_client):
    response = admin_client.post("/packages", "{not json", content_type="application/json")
    assert response.status_code == 400, response.content


# Delete ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.SUPER_ADMIN])
def test_delete_is_soft_by_admin(client_as, api, kind):
    client, _ = client_as(kind)
    package = PackageFactory()
    CustomerFactory(package=package, status=Status.REMOVED)

    response = client.delete(f"/packages/{package.uid}")

    assert response.status_code == 204, response.content
    assert response.content == b""
    package.refresh_from_db()
    assert package.status == Status.REMOVED
    assert api.get(f"/packages/{package.uid}").status_code == 404
    assert api.get("/packages").json()["count"] == 0
    assert client.delete(f"/packages/{package.uid}").status_code == 404


@pytest.mark.parametrize("kind", [UserKind.MANAGER, UserKind.STAFF, UserKind.CUSTOMER,
                                  UserKind.OTHER])
def test_delete_forbidden_below_admin(client_as, kind):
    client, _ = client_as(kind)
    package = PackageFactory()
    response = client.delete(f"/packages/{package.uid}")
    assert response.status_code == 403, response.content
    package.refresh_from_db()
    assert package.status == Status.ACTIVE


def test_put_leaves_what_the_body_omits(admin_client):
    package = PackageFactory(description="Fibre, 20 Mbps")

    response = admin_client.put(f"/packages/{package.uid}",
                                {"name": "Home 25", "speed_mbps": 25, "price": "600"})

    assert response.status_code == 200, response.content
    assert response.json()["description"] == "Fibre, 20 Mbps"
    assert (response.json()["name"], response.json()["price"]) == ("Home 25", "600.00")


def test_delete_refused_while_live_customers_use_it(admin_client):
    package = PackageFactory()
    CustomerFactory(package=package, is_active=False)  # inactive still counts: not REMOVED

    response = admin_client.delete(f"/packages/{package.uid}")

    assert response.status_code == 400, response.content
    assert response.json() == {
        "non_field_errors": ["This package has 1 customer(s); move them first."]
    }
    package.refresh_from_db()
    assert package.status == Status.ACTIVE


# Customers of a package ---------------------------------------------------------


def test_package_customers_lists_its_live_customers(admin_client):
    package = PackageFactory()
    mine = CustomerFactory.create_batch(2, package=package)
    CustomerFactory(package=package, status=Status.REMOVED)
    CustomerFactory()  # another package

    response = admin_client.get(f"/packages/{package.uid}/customers")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_page(body)
    assert body["count"] == 2
    assert {row["uid"] for row in body["results"]} == {str(c.uid) for c in mine}
    for row in body["results"]:
        assert_customer(row, CUSTOMER_LIST_KEYS)
        assert row["package"]["uid"] == str(package.uid)


def test_package_customers_needs_customer_read(client_as, api):
    package = PackageFactory()
    assert api.get(f"/packages/{package.uid}/customers").status_code == 401
    client, _ = client_as(UserKind.OTHER)
    assert client.get(f"/packages/{package.uid}/customers").status_code == 403


def test_package_customers_of_unknown_package_is_404(admin_client):
    package = PackageFactory(status=Status.REMOVED)
    assert admin_client.get(f"/packages/{package.uid}/customers").status_code == 404
