"""Customers: create, list filters, detail, full update, soft delete, validation, toggle."""

from datetime import date
from decimal import Decimal
from uuid import UUID

import pytest
from django.core.exceptions import ValidationError

from billing import services
from billing.models import ConnectionChange, Customer
from core.enums import ConnectionType, Status, UserKind
from core.listing import nested_values
from tests.billing.factories import CustomerFactory, PackageFactory, RouterFactory
from tests.billing.shapes import (
    CUSTOMER_DETAIL_KEYS,
    CUSTOMER_LIST_KEYS,
    PACKAGE_BASE_KEYS,
    assert_customer,
    assert_page,
)
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db


def body_for(package, **change):
    body = {
        "name": "Rahim Uddin",
        "email": "rahim@example.net",
        "phone": "01711000001",
        "address": "House 1, Road 2, Dhaka",
        "nid": "1990123456789",
        "is_free": False,
        "package_id": package.id,
        "connection_start_date": "2026-01-10",
        "is_active": True,
        "ip_address": "",
        "mac_address": "AA:BB:CC:DD:EE:FF",
        "username": "rahim",
        "password": "pppoe-secret",
        "connection_type": "PPPoE",
        "credentials": {"vlan": 10},
    }
    body.update(change)
    return body


# Create ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER, UserKind.STAFF])
def test_create(client_as, package, kind):
    client, _ = client_as(kind)

    response = client.post("/customers", body_for(package))

    assert response.status_code == 201, response.content
    body = response.json()
    assert_customer(body, CUSTOMER_DETAIL_KEYS)
    customer = Customer.objects.get(uid=body["uid"])
    assert body["id"] == customer.id
    assert body["package"] == {
        "id": package.id,
        "uid": str(package.uid),
        "name": package.name,
        "speed_mbps": package.speed_mbps,
        "price": "500.00",
        "description": package.description,
    }
    assert set(body["package"]) == PACKAGE_BASE_KEYS
    expected = body_for(package)
    for field in ("name", "email", "phone", "address", "nid", "is_free", "is_active",
                  "connection_start_date", "mac_address", "username", "password",
                  "connection_type", "credentials", "ip_address"):
        assert body[field] == expected[field], field
    assert body["user"] is None
    assert body["status"] == "ACTIVE"
    assert body["balance"] == "0.00"
    assert customer.package_id == package.id
    assert customer.credentials == {"vlan": 10}
    assert customer.connection_type == ConnectionType.PPPOE


def test_create_minimal_gives_empty_strings_not_nulls(admin_client, package):
    response = admin_client.post("/customers", {"name": "Minimal", "package_id": package.id})
    assert response.status_code == 201, response.content
    body = response.json()
    assert_customer(body)
    assert body["connection_type"] == "DHCP"
    assert body["email"] == body["phone"] == body["username"] == body["ip_address"] == ""
    assert body["connection_start_date"] is None
    assert body["credentials"] == {}
    assert body["is_active"] is True and body["is_free"] is False


@pytest.mark.parametrize("kind", [UserKind.CUSTOMER, UserKind.OTHER])
def test_create_forbidden(client_as, package, kind):
    client, _ = client_as(kind)
    response = client.post("/customers", body_for(package))
    assert response.status_code == 403, response.content
    assert not Customer.objects.exists()


def test_create_with_user_id_links_and_makes_the_user_a_customer(admin_client, package,
                                                                  make_user):
    user = make_user(kind=UserKind.OTHER)

    response = admin_client.post("/customers", body_for(package, user_id=user.id))

    assert response.status_code == 201, response.content
    body = response.json()
    assert_customer(body)
    assert body["user"]["id"] == user.id
    assert body["user"]["kind"] == "CUSTOMER"
    user.refresh_from_db()
    assert user.kind == UserKind.CUSTOMER
    assert Customer.objects.get(uid=body["uid"]).user_id == user.id


# Validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, fields",
    [
        ({"connection_type": "PPPoE", "username": "", "password": ""}, {"username", "password"}),
        ({"connection_type": "PPPoE", "password": ""}, {"password"}),
        ({"connection_type": "PPPoE", "username": ""}, {"username"}),
        ({"connection_type": "STATIC", "ip_address": ""}, {"ip_address"}),
        ({"connection_type": "STATIC", "ip_address": "300.1.1.1"}, {"ip_address"}),
        ({"connection_type": "STATIC", "ip_address": "not-an-ip"}, {"ip_address"}),
        ({"connection_type": "FIBER"}, {"connection_type"}),
        ({"name": ""}, {"name"}),
        ({"name": "   "}, {"name"}),
        ({"email": "not-an-email"}, {"email"}),
        ({"mac_address": "zz"}, {"mac_address"}),
        ({"connection_start_date": "10/01/2026"}, {"connection_start_date"}),
        ({"package_id": "abc"}, {"package_id"}),
        ({"credentials": "text"}, {"credentials"}),
        ({"is_active": "maybe"}, {"is_active"}),
    ],
)
def test_invalid_values_are_400_on_the_field(admin_client, package, change, fields):
    response = admin_client.post("/customers", body_for(package, **change))
    assert response.status_code == 400, response.content
    assert set(response.json()) == fields, response.json()
    assert not Customer.objects.exists()


def test_static_with_valid_ip_is_accepted(admin_client, package):
    response = admin_client.post(
        "/customers",
        body_for(package, connection_type="STATIC", ip_address="10.0.0.7", username="",
                 password=""),
    )
    assert response.status_code == 201, response.content
    assert response.json()["ip_address"] == "10.0.0.7"


def test_missing_name_and_package_are_400(admin_client, package):
    body = body_for(package)
    del body["name"], body["package_id"]
    response = admin_client.post("/customers", body)
    assert response.status_code == 400, response.content
    assert response.json() == {
        "name": ["This field is required."],
        "package_id": ["This field is required."],
    }


def test_unknown_package_is_400(admin_client, package):
    response = admin_client.post("/customers", body_for(package, package_id=999999))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["package_id"]


def test_removed_package_is_400(admin_client):
    removed = PackageFactory(status=Status.REMOVED)
    response = admin_client.post("/customers", body_for(removed))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["package_id"]


@pytest.mark.parametrize(
    "field, existing, sent",
    [
        ("phone", "01711000001", "01711000001"),
        ("email", "rahim@example.net", "RAHIM@example.net"),
        ("username", "rahim", "rahim"),
    ],
)
def test_duplicate_unique_value_is_400_on_the_field(admin_client, package, field, existing,
                                                     sent):
    CustomerFactory(**{field: existing})
    response = admin_client.post("/customers", body_for(package, **{field: sent}))
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("field, value", [("phone", "01711000001"),
                                          ("email", "rahim@example.net"),
                                          ("username", "rahim")])
def test_values_of_a_removed_customer_may_be_reused(admin_client, package, field, value):
    CustomerFactory(status=Status.REMOVED, **{field: value})
    response = admin_client.post("/customers", body_for(package, **{field: value}))
    assert response.status_code == 201, response.content


def test_duplicate_on_update_is_400(admin_client, package):
    CustomerFactory(phone="01711000009")
    mine = CustomerFactory(package=package)
    response = admin_client.put(f"/customers/{mine.uid}",
                                body_for(package, phone="01711000009"))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["phone"]


def test_empty_phones_are_not_duplicates(admin_client, package):
    CustomerFactory(phone="", email="", username="", connection_type=ConnectionType.DHCP)
    response = admin_client.post(
        "/customers",
        body_for(package, phone="", email="", username="", password="", connection_type="DHCP"),
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("which", ["unknown", "staff", "removed", "linked"])
def test_invalid_user_id_is_400(admin_client, package, make_user, which):
    if which == "unknown":
        user_id = 999999
    elif which == "staff":
        user_id = make_user(kind=UserKind.STAFF).id
    elif which == "removed":
        user_id = make_user(status=Status.REMOVED).id
    else:
        user = make_user(kind=UserKind.CUSTOMER)
        CustomerFactory(user=user)
        user_id = user.id
    response = admin_client.post("/customers", body_for(package, user_id=user_id))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["user_id"]
    assert Customer.objects.filter(phone="01711000001").count() == 0


# List and filters -----------------------------------------------------------------


def test_list_shape_and_order(admin_client):
    first = CustomerFactory()
    second = CustomerFactory()
    CustomerFactory(status=Status.REMOVED)

    response = admin_client.get("/customers")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_page(body)
    assert body["count"] == 2
    assert [row["uid"] for row in body["results"]] == [str(second.uid), str(first.uid)]
    for row in body["results"]:
        assert_customer(row, CUSTOMER_LIST_KEYS)


def test_list_pages(admin_client):
    CustomerFactory.create_batch(3)
    body = admin_client.get("/customers", {"page_size": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2
    assert body["next"].startswith("http") and "page=2" in body["next"]
    assert "page_size=2" in body["next"]
    assert body["previous"] is None
    response = admin_client.get("/customers", {"page": 3, "page_size": 2})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


@pytest.fixture
def filter_rows(make_user):
    fiber = PackageFactory(name="Fiber")
    user = make_user(kind=UserKind.CUSTOMER)
    rows = {
        "karim": CustomerFactory(name="Karim Ahmed", phone="01800000001", username="karim.net",
                                 package=fiber, user=user),
        "rahim": CustomerFactory(name="Rahim Uddin", phone="01800000002", username="rahim.net",
                                 is_active=False),
        "free": CustomerFactory(name="Free School", phone="01800000003", username="school",
                                is_free=True),
    }
    return rows, fiber, user


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"name": "ahmed"}, {"karim"}),
        ({"name": "u"}, {"rahim"}),  # "Rahim Uddin" contains u; the others do not
        ({"phone": "01800000002"}, {"rahim"}),
        ({"phone": "0180000000"}, set()),  # exact, not contains
        ({"username": ".NET"}, {"karim", "rahim"}),
        ({"is_active": "false"}, {"rahim"}),
        ({"is_active": "true"}, {"karim", "free"}),
        ({"is_free": "true"}, {"free"}),
        ({"is_free": "false"}, {"karim", "rahim"}),
        ({"name": "a", "is_active": "true", "is_free": "false"}, {"karim"}),
    ],
)
def test_list_filters(admin_client, filter_rows, params, expected):
    rows, _, _ = filter_rows
    response = admin_client.get("/customers", params)
    assert response.status_code == 200, response.content
    found = {row["uid"] for row in response.json()["results"]}
    assert found == {str(rows[key].uid) for key in expected}


def test_list_filter_by_package_and_user(admin_client, filter_rows):
    rows, fiber, user = filter_rows
    by_package = admin_client.get("/customers", {"package_id": fiber.id}).json()
    assert [row["uid"] for row in by_package["results"]] == [str(rows["karim"].uid)]
    by_user = admin_client.get("/customers", {"user_id": user.id}).json()
    assert [row["uid"] for row in by_user["results"]] == [str(rows["karim"].uid)]


def test_list_bad_filter_value_is_400(admin_client):
    response = admin_client.get("/customers", {"is_active": "perhaps"})
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["is_active"]


# Detail --------------------------------------------------------------------------------


def test_detail_with_user(admin_client, make_user):
    user = make_user(kind=UserKind.CUSTOMER, first_name="Karim")
    customer = CustomerFactory(user=user)

    response = admin_client.get(f"/customers/{customer.uid}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_customer(body, CUSTOMER_DETAIL_KEYS)
    assert body["user"] == {
        "id": user.id,
        "uid": str(user.uid),
        "first_name": "Karim",
        "last_name": user.last_name,
        "phone": user.phone,
        "email": user.email,
        "gender": "UNKNOWN",
        "kind": "CUSTOMER",
        "image": None,
    }


def test_detail_without_user(admin_client):
    customer = CustomerFactory()
    body = admin_client.get(f"/customers/{customer.uid}").json()
    assert_customer(body, CUSTOMER_DETAIL_KEYS)
    assert body["user"] is None
    assert body["id"] == customer.id


def test_detail_of_unknown_is_404(admin_client):
    response = admin_client.get("/customers/7b0c3c7e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# Update -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER])
def test_put_is_a_full_update_and_keeps_the_user_link(client_as, make_user, kind):
    client, _ = client_as(kind)
    user = make_user(kind=UserKind.CUSTOMER)
    customer = CustomerFactory(user=user, address="Old address", nid="123")
    other_package = PackageFactory(name="Other", price="800.00")

    body = body_for(other_package, name="Renamed", address="", id=123, uid="ignored")
    response = client.put(f"/customers/{customer.uid}", body)

    assert response.status_code == 200, response.content
    out = response.json()
    assert_customer(out, CUSTOMER_DETAIL_KEYS)
    assert out["id"] == customer.id and out["uid"] == str(customer.uid)
    assert out["name"] == "Renamed"
    assert out["address"] == ""
    assert out["package"]["id"] == other_package.id
    assert out["user"]["id"] == user.id
    customer.refresh_from_db()
    assert customer.name == "Renamed"
    assert customer.address == ""
    assert customer.nid == "1990123456789"
    assert customer.package_id == other_package.id
    assert customer.user_id == user.id
    user.refresh_from_db()
    assert user.kind == UserKind.CUSTOMER


def test_put_with_user_id_links_and_makes_the_user_a_customer(admin_client, package,
                                                              make_user):
    customer = CustomerFactory(package=package)
    user = make_user(kind=UserKind.OTHER)

    response = admin_client.put(f"/customers/{customer.uid}",
                                body_for(package, user_id=user.id))

    assert response.status_code == 200, response.content
    assert response.json()["user"]["id"] == user.id
    assert response.json()["user"]["kind"] == "CUSTOMER"
    customer.refresh_from_db()
    user.refresh_from_db()
    assert customer.user_id == user.id
    assert user.kind == UserKind.CUSTOMER


def test_put_with_user_id_null_unlinks(admin_client, package, make_user):
    user = make_user(kind=UserKind.CUSTOMER)
    customer = CustomerFactory(package=package, user=user)
    response = admin_client.put(f"/customers/{customer.uid}", body_for(package, user_id=None))
    assert response.status_code == 200, response.content
    assert response.json()["user"] is None
    customer.refresh_from_db()
    assert customer.user_id is None
    user.refresh_from_db()
    assert user.kind == UserKind.OTHER


def test_put_with_invalid_user_id_is_400(admin_client, package):
    customer = CustomerFactory(package=package)
    response = admin_client.put(f"/customers/{customer.uid}", body_for(package, user_id=424242))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["user_id"]


def test_put_validation_applies(admin_client, package):
    customer = CustomerFactory(package=package)
    response = admin_client.put(f"/customers/{customer.uid}",
                                body_for(package, connection_type="STATIC", ip_address=""))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["ip_address"]


def test_put_changing_is_active_records_a_connection_change(
    admin, package, django_capture_on_commit_callbacks
):
    client, user = admin
    customer = CustomerFactory(package=package, username="rahim", is_active=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.put(f"/customers/{customer.uid}",
                              body_for(package, is_active=False))
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    change = ConnectionChange.objects.get(customer=customer)
    assert change.enable is False
    assert change.reason == ConnectionChange.Reason.UPDATE
    assert change.requested_by == user
    assert change.confirmed_at is not None


def test_put_leaves_what_the_body_omits(admin_client, package):
    """As DRF's full update: only the fields sent change; an edit form that leaves out
    ``is_active`` does not switch a disabled connection back on."""
    customer = CustomerFactory(package=package, phone="01711000009", address="Road 1",
                               is_active=False, credentials={"vlan": 20},
                               connection_type=ConnectionType.PPPOE, username="karim")

    response = admin_client.put(f"/customers/{customer.uid}",
                                {"name": "Karim", "package_id": package.id})

    assert response.status_code == 200, response.content
    out = response.json()
    assert out["name"] == "Karim"
    assert (out["phone"], out["address"], out["is_active"]) == ("01711000009", "Road 1", False)
    assert (out["connection_type"], out["username"]) == ("PPPoE", "karim")
    assert out["credentials"] == {"vlan": 20}
    assert not ConnectionChange.objects.filter(customer=customer).exists()


def test_an_update_keeps_what_the_row_holds_now_not_what_was_read(package, make_user):
    """Between the request's read and the save, a payment may re-enable the customer:
    what the body omits comes from the locked row."""
    stale = CustomerFactory(package=package, is_active=False)
    Customer.objects.filter(pk=stale.pk).update(is_active=True, address="Moved")

    saved = services.customer_save(customer=stale, data={"name": "Karim", "package_id": package.id},
                                   actor=make_user(kind=UserKind.ADMIN))

    saved.refresh_from_db()
    assert (saved.name, saved.is_active, saved.address) == ("Karim", True, "Moved")
    assert not ConnectionChange.objects.filter(customer=saved).exists()


def test_put_validates_what_it_keeps_with_what_it_changes(admin_client, package):
    customer = CustomerFactory(package=package, connection_type=ConnectionType.DHCP,
                               ip_address="")

    response = admin_client.put(f"/customers/{customer.uid}",
                                {"name": "Karim", "package_id": package.id,
                                 "connection_type": "STATIC"})

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["ip_address"]


# Delete --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER])
def test_delete_is_soft(client_as, kind):
    client, _ = client_as(kind)
    customer = CustomerFactory(is_active=True)

    response = client.delete(f"/customers/{customer.uid}")

    assert response.status_code == 204, response.content
    assert response.content == b""
    customer.refresh_from_db()
    assert customer.status == Status.REMOVED
    assert customer.is_active is False
    assert client.get("/customers").json()["count"] == 0
    assert client.get(f"/customers/{customer.uid}").status_code == 404
    assert client.delete(f"/customers/{customer.uid}").status_code == 404
    assert ConnectionChange.objects.filter(customer=customer, enable=False,
                                           reason=ConnectionChange.Reason.REMOVED).exists()


# Status toggle -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER])
def test_toggle_sets_is_active_and_hands_the_change_to_the_network(
    client_as, django_capture_on_commit_callbacks, kind
):
    client, user = client_as(kind)
    customer = CustomerFactory(username="karim", is_active=True)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post("/customers/status/toggle",
                               {"username": "karim", "is_active": False})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"message", "task_id"}
    assert isinstance(body["message"], str) and body["message"]
    assert len(callbacks) == 1
    customer.refresh_from_db()
    assert customer.is_active is False
    change = ConnectionChange.objects.get(customer=customer)
    assert change.task_id == body["task_id"]
    assert change.enable is False
    assert change.reason == ConnectionChange.Reason.TOGGLE
    assert change.requested_by == user
    assert change.confirmed_at is not None  # the logging backend confirms in-process
    assert change.attempts == 1
    assert customer.network_confirmed_active is False
    assert customer.network_confirmed_at is not None

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post("/customers/status/toggle", {"username": "karim", "is_active": True})
    assert again.status_code == 200, again.content
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True
    assert ConnectionChange.objects.filter(customer=customer).count() == 2
    latest = ConnectionChange.objects.filter(customer=customer).first()
    assert latest.enable is True and latest.task_id == again.json()["task_id"]


def test_toggle_accepts_trailing_slash(admin_client):
    CustomerFactory(username="karim", is_active=True)
    response = admin_client.post("/customers/status/toggle/",
                                 {"username": "karim", "is_active": False})
    assert response.status_code == 200, response.content
    assert Customer.objects.get(username="karim").is_active is False


def test_toggle_unknown_username_is_404(admin_client):
    CustomerFactory(username="removed", status=Status.REMOVED)
    for username in ("nobody", "removed"):
        response = admin_client.post("/customers/status/toggle",
                                     {"username": username, "is_active": True})
        assert response.status_code == 404, response.content
        assert response.json() == {"detail": "Not found."}
    assert not ConnectionChange.objects.exists()


@pytest.mark.parametrize("body, fields", [({"is_active": True}, {"username"}),
                                          ({"username": "karim"}, {"is_active"}),
                                          ({"username": "karim", "is_active": "x"},
                                           {"is_active"})])
def test_toggle_bad_body_is_400(admin_client, body, fields):
    CustomerFactory(username="karim")
    response = admin_client.post("/customers/status/toggle", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == fields


@pytest.mark.parametrize("kind", [UserKind.STAFF, UserKind.CUSTOMER, UserKind.OTHER])
def test_toggle_forbidden(client_as, kind):
    client, _ = client_as(kind)
    customer = CustomerFactory(username="karim", is_active=True)
    response = client.post("/customers/status/toggle", {"username": "karim", "is_active": False})
    assert response.status_code == 403, response.content
    customer.refresh_from_db()
    assert customer.is_active is True
    assert not ConnectionChange.objects.exists()



def test_removing_a_customer_unlinks_their_login(client_as, package):
    from billing.models import Customer
    from tests.factories import UserFactory

    client, _ = client_as(UserKind.ADMIN)
    login = UserFactory(kind=UserKind.OTHER)
    created = client.post(
        "/customers", {"name": "Linked", "package_id": package.pk, "user_id": login.pk}
    ).json()
    login.refresh_from_db()
    assert login.kind == UserKind.CUSTOMER
    assert client.delete(f"/customers/{created['uid']}").status_code == 204
    login.refresh_from_db()
    assert login.kind == UserKind.OTHER
    assert Customer.objects.get(pk=created["id"]).user is None
    me = ApiClient().bearer(login).get("/users/me").json()
    assert me["customer_uid"] is None


def test_list_rows_show_what_the_detail_shows(admin_client):
    """List pages are read as rows, details as models: both render a customer alike."""
    customer = CustomerFactory(credentials={"id": None, "vlan": 20}, balance=Decimal("15.00"),
                               ip_address="10.0.0.9", connection_start_date=date(2026, 1, 5))

    row = admin_client.get("/customers").json()["results"][0]
    detail = admin_client.get(f"/customers/{customer.uid}").json()

    assert row == {key: detail[key] for key in row}
    assert set(row) == set(detail) - {"user"}
    assert row["package"]["id"] == customer.package_id
    assert row["credentials"] == {"id": None, "vlan": 20}


def test_nested_values_takes_one_level_with_ids():
    customers = Customer.objects.all()
    with pytest.raises(ValueError):
        nested_values(customers, "id", "package__name")  # no package__id
    with pytest.raises(ValueError):
        nested_values(customers, "id", "user__id", "user__customer__id")


@pytest.mark.parametrize("query", [
    {"package_id": str(2**63)}, {"user_id": str(-(2**63) - 1)},
])
def test_an_id_filter_outside_64_bits_is_400_on_the_field(admin_client, query):
    response = admin_client.get("/customers", query)
    assert response.status_code == 400, response.content
    assert list(response.json()) == list(query)


@pytest.mark.parametrize("credentials", [
    {"k": 1e20}, {"k": [1, {"deep": 2**63}]}, {"k": -(2**63) - 1},
])
def test_credentials_numbers_beyond_64_bits_are_400(admin_client, package, credentials):
    """PostgreSQL would give 1e20 back as an integer no response could be written with."""
    created = admin_client.post("/customers", body_for(package, credentials=credentials))
    customer = CustomerFactory(package=package)
    updated = admin_client.put(f"/customers/{customer.uid}",
                               body_for(package, phone="", email="", username="x",
                                        credentials=credentials))

    for response in (created, updated):
        assert response.status_code == 400, response.content
        assert response.json() == {"credentials": [
            "Numbers must lie between -9223372036854775808 and 9223372036854775807."
        ]}
    assert Customer.objects.count() == 1
    customer.refresh_from_db()
    assert customer.credentials == {}


def test_credentials_numbers_are_checked_by_the_model_too(package):
    """The admin's form runs the model's validators."""
    customer = CustomerFactory.build(package=package, credentials={"k": 2**70})
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "credentials" in raised.value.message_dict
    customer.credentials = {"k": float("nan")}  # json.loads, as the admin's form, takes NaN
    with pytest.raises(ValidationError):
        customer.full_clean()
    customer.credentials = {"k": 2**62, "f": 1.5, "ok": True, "neg": -(2**63)}
    customer.full_clean()


# Routers (*extra*) -------------------------------------------------------------------


def test_router_id_round_trip(admin_client, package):
    router = RouterFactory(name="edge-1")
    created = admin_client.post("/customers", body_for(package, router_id=router.id))
    assert created.status_code == 201, created.content
    assert_customer(created.json())
    ref = {"id": router.id, "uid": str(router.uid), "name": "edge-1"}
    assert created.json()["router"] == ref
    uid = created.json()["uid"]
    assert admin_client.get(f"/customers/{uid}").json()["router"] == ref
    listed = admin_client.get("/customers").json()["results"][0]
    assert_customer(listed, CUSTOMER_LIST_KEYS)
    assert listed["router"] == ref
    assert Customer.objects.get(uid=uid).router == router

    other = RouterFactory(name="edge-2")
    moved = admin_client.put(f"/customers/{uid}", body_for(package, router_id=other.id))
    assert moved.json()["router"]["name"] == "edge-2"
    kept = admin_client.put(f"/customers/{uid}", body_for(package, name="Kept"))
    assert kept.json()["router"]["name"] == "edge-2"
    dropped = admin_client.put(f"/customers/{uid}", body_for(package, router_id=None))
    assert dropped.json()["router"] is None
    assert Customer.objects.get(uid=uid).router is None


def test_a_customer_without_a_router_shows_null(admin_client, package):
    created = admin_client.post("/customers", body_for(package))
    assert created.json()["router"] is None


@pytest.mark.parametrize("router_id", ["unknown", "removed", True, "abc", -1, 2**70, 1.5])
def test_invalid_router_id_is_400(admin_client, package, router_id):
    if router_id == "unknown":
        router_id = 999_999
    elif router_id == "removed":
        router_id = RouterFactory(status=Status.REMOVED).id
    response = admin_client.post("/customers", body_for(package, router_id=router_id))
    assert response.status_code == 400, response.content
    assert "router_id" in response.json()
    assert not Customer.objects.exists()


def test_put_with_a_removed_router_is_400_and_keeps_the_current_one(admin_client, package):
    current = RouterFactory()
    customer = CustomerFactory(package=package, router=current, username="rahim")
    removed = RouterFactory(status=Status.REMOVED)
    response = admin_client.put(f"/customers/{customer.uid}",
                                body_for(package, router_id=removed.id))
    assert response.status_code == 400
    assert list(response.json()) == ["router_id"]
    customer.refresh_from_db()
    assert customer.router == current


def test_a_new_package_or_router_is_carried_to_the_network(
    admin, package, django_capture_on_commit_callbacks
):
    client, user = admin
    faster = PackageFactory(router_profile="50M")
    first, second = RouterFactory(), RouterFactory()
    customer = CustomerFactory(package=package, router=first, username="rahim")
    with django_capture_on_commit_callbacks(execute=False):
        same = client.put(f"/customers/{customer.uid}",
                          body_for(package, router_id=first.id, name="Same connection"))
        assert same.status_code == 200, same.content
        assert not ConnectionChange.objects.exists()
        client.put(f"/customers/{customer.uid}", body_for(faster, router_id=first.id))
        client.put(f"/customers/{customer.uid}", body_for(faster, router_id=second.id))
    changes = list(ConnectionChange.objects.filter(customer=customer).order_by("id"))
    assert [(c.reason, c.enable, c.requested_by) for c in changes] == [
        (ConnectionChange.Reason.PACKAGE, True, user)] * 2


@pytest.mark.parametrize("active", [True, False])
def test_a_new_customer_on_a_router_is_carried_out_there_at_once(
    admin, package, django_capture_on_commit_callbacks, active
):
    """Their secret is created (or their address blocked) now, not at the next sync; a
    new customer on no router asks nothing of the network."""
    client, user = admin
    router = RouterFactory()
    with django_capture_on_commit_callbacks(execute=False):
        created = client.post("/customers", body_for(package, router_id=router.id,
                                                     is_active=active))
        assert created.status_code == 201, created.content
        nowhere = client.post("/customers", body_for(package, username="karim",
                                                     phone="01711000002",
                                                     email="karim@example.net"))
        assert nowhere.status_code == 201, nowhere.content
    change = ConnectionChange.objects.get()
    assert (change.customer.uid, change.enable, change.requested_by) == \
        (UUID(created.json()["uid"]), active, user)
    assert change.reason == ConnectionChange.Reason.UPDATE


def test_a_switch_off_with_a_move_makes_one_change(
    admin_client, package, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(package=package, router=RouterFactory(), username="rahim")
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.put(
            f"/customers/{customer.uid}",
            body_for(package, router_id=RouterFactory().id, is_active=False),
        )
    assert response.status_code == 200, response.content
    change = ConnectionChange.objects.get(customer=customer)
    assert (change.reason, change.enable) == (ConnectionChange.Reason.UPDATE, False)


def test_a_new_customer_on_a_router_makes_no_package_change(
    admin_client, package, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post("/customers", body_for(package, router_id=RouterFactory().id))
    assert response.status_code == 201
    assert not ConnectionChange.objects.filter(reason=ConnectionChange.Reason.PACKAGE).exists()
