"""``/users`` and ``/users/me`` over HTTP (api-contract.md, Users and the Roles table)."""

import uuid

import pytest

from accounts.models import User
from core.enums import Gender, Status, UserKind
from tests.accounts.shapes import ME_KEYS, PAGE_KEYS, USER_DETAIL_KEYS, USER_LIST_KEYS
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Fresh-Secret-2024"


def new_user_payload(**overrides):
    payload = {
        "first_name": "Nusrat",
        "last_name": "Jahan",
        "phone": "+8801811000001",
        "email": "nusrat@example.com",
        "gender": "FEMALE",
        "kind": "STAFF",
        "status": "ACTIVE",
        "is_staff": False,
        "password": NEW_PASSWORD,
    }
    payload.update(overrides)
    return payload


def full_payload(user: User, **overrides):
    """What the app's edit form sends back for ``user``: its UserList fields and more."""
    payload = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone": user.phone,
        "email": user.email,
        "gender": user.gender,
        "kind": user.kind,
        "status": user.status,
        "is_staff": user.is_staff,
    }
    payload.update(overrides)
    return payload


def assert_forbidden(response):
    assert response.status_code == 403, response.content
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str) and body["detail"]


def assert_not_found(response):
    assert response.status_code == 404, response.content
    assert response.json() == {"detail": "Not found."}


def can_log_in(phone: str, password: str) -> bool:
    response = ApiClient().post("/users/login", {"phone": phone, "password": password})
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


# List ------------------------------------------------------------------------


def test_list_shape(client_as, make_user):
    client, admin = client_as(UserKind.ADMIN)
    other = make_user(kind=UserKind.STAFF, gender=Gender.MALE)

    response = client.get("/users")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == PAGE_KEYS
    assert body["count"] == 2
    assert body["next"] is None and body["previous"] is None
    for row in body["results"]:
        assert set(row) == USER_LIST_KEYS
    row = next(r for r in body["results"] if r["id"] == other.id)
    assert row == {
        "id": other.id,
        "uid": str(other.uid),
        "first_name": other.first_name,
        "last_name": other.last_name,
        "phone": other.phone,
        "email": other.email,
        "gender": "MALE",
        "kind": "STAFF",
        "image": None,
    }


def test_list_is_newest_first(client_as, make_user):
    client, admin = client_as(UserKind.ADMIN)
    first = make_user()
    second = make_user()
    third = make_user()

    ids = [row["id"] for row in client.get("/users").json()["results"]]

    assert ids == [third.id, second.id, first.id, admin.id]


def test_list_leaves_out_removed_users(client_as, make_user):
    client, admin = client_as(UserKind.ADMIN)
    kept = make_user(status=Status.INACTIVE)
    make_user(status=Status.REMOVED)

    body = client.get("/users").json()

    assert body["count"] == 2
    assert {row["id"] for row in body["results"]} == {admin.id, kept.id}


def test_list_filters_by_kind_and_status(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    staff = make_user(kind=UserKind.STAFF)
    inactive_staff = make_user(kind=UserKind.STAFF, status=Status.INACTIVE)
    make_user(kind=UserKind.OTHER)

    by_kind = client.get("/users", {"kind": "STAFF"}).json()
    assert {row["id"] for row in by_kind["results"]} == {staff.id, inactive_staff.id}
    by_both = client.get("/users", {"kind": "STAFF", "status": "INACTIVE"}).json()
    assert [row["id"] for row in by_both["results"]] == [inactive_staff.id]


@pytest.mark.parametrize("param", ["kind", "status"])
def test_list_unknown_enum_filter_is_400(admin_client, param):
    response = admin_client.get("/users", {param: "BOGUS"})

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {param}
    assert "BOGUS" in body[param][0]


def test_list_search(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    zed = make_user(first_name="Zedekiah", last_name="Rahman")
    make_user(first_name="Karim", last_name="Rahman")
    by_email = make_user(email="zed.mail@example.com", first_name="Ana")

    names = client.get("/users", {"search": "zed"}).json()
    assert {row["id"] for row in names["results"]} == {zed.id, by_email.id}
    both_words = client.get("/users", {"search": "zedekiah rahman"}).json()
    assert [row["id"] for row in both_words["results"]] == [zed.id]
    by_phone = client.get("/users", {"search": zed.phone[-6:]}).json()
    assert [row["id"] for row in by_phone["results"]] == [zed.id]
    nothing = client.get("/users", {"search": "no-such-user"}).json()
    assert nothing["count"] == 0 and nothing["results"] == []


# Create ----------------------------------------------------------------------


def test_create_returns_201_user_detail(admin_client):
    response = admin_client.post("/users", new_user_payload())

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == USER_DETAIL_KEYS
    user = User.objects.get(pk=body["id"])
    assert body["uid"] == str(user.uid)
    assert body["first_name"] == "Nusrat"
    assert body["last_name"] == "Jahan"
    assert body["phone"] == "+8801811000001"
    assert body["email"] == "nusrat@example.com"
    assert body["gender"] == "FEMALE"
    assert body["kind"] == "STAFF"
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is False
    assert body["image"] is None
    assert body["created_at"] and body["updated_at"]
    assert body["created_at"].endswith("+06:00")  # the business timezone (Asia/Dhaka)
    assert can_log_in("+8801811000001", NEW_PASSWORD)


def test_create_without_password_makes_a_user_who_cannot_log_in(admin_client):
    payload = new_user_payload()
    del payload["password"]

    response = admin_client.post("/users", payload)

    assert response.status_code == 201, response.content
    assert User.objects.get(pk=response.json()["id"]).has_usable_password() is False
    assert not can_log_in(payload["phone"], "!")
    assert not can_log_in(payload["phone"], NEW_PASSWORD)


def test_create_applies_defaults_for_optional_fields(admin_client):
    response = admin_client.post("/users", {"phone": "+8801811000002"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["first_name"] == "" and body["last_name"] == "" and body["email"] == ""
    assert body["gender"] == "UNKNOWN"
    assert body["kind"] == "OTHER"
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is False


def test_create_ignores_read_only_and_unknown_keys(admin_client):
    payload = new_user_payload(
        id=999999, uid=str(uuid.uuid4()), created_at="2001-01-01T00:00:00Z", bogus="x"
    )

    response = admin_client.post("/users", payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] != 999999
    assert body["uid"] != payload["uid"]
    assert not body["created_at"].startswith("2001")
    assert "bogus" not in body


def test_create_missing_phone_is_400(admin_client):
    payload = new_user_payload()
    del payload["phone"]

    response = admin_client.post("/users", payload)

    assert response.status_code == 400, response.content
    assert response.json() == {"phone": ["This field is required."]}


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"phone": "abc"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"gender": "ROBOT"}, "gender"),
        ({"kind": "EMPEROR"}, "kind"),
        ({"status": "ALIVE"}, "status"),
        ({"is_staff": "perhaps"}, "is_staff"),
        ({"password": "123"}, "password"),
        ({"first_name": "x" * 151}, "first_name"),
    ],
)
def test_create_invalid_field_is_400_on_that_field(admin_client, overrides, field):
    response = admin_client.post("/users", new_user_payload(**overrides))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {field}
    assert body[field] and all(isinstance(m, str) for m in body[field])
    assert not User.objects.filter(phone="+8801811000001").exists()


def test_create_unknown_enum_message_names_the_value(admin_client):
    response = admin_client.post("/users", new_user_payload(kind="EMPEROR"))
    assert response.json() == {"kind": ['"EMPEROR" is not a valid choice.']}


def test_create_normalises_the_phone(admin_client):
    response = admin_client.post("/users", new_user_payload(phone="+880 1811-000 009"))

    assert response.status_code == 201, response.content
    assert response.json()["phone"] == "+8801811000009"


def test_create_duplicate_phone_is_400_on_phone(admin_client, make_user):
    existing = make_user()

    response = admin_client.post("/users", new_user_payload(phone=existing.phone))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"phone"}
    assert body["phone"]


def test_create_duplicate_phone_written_differently_is_400_on_phone(admin_client, make_user):
    make_user(phone="+8801711223344")

    response = admin_client.post("/users", new_user_payload(phone="+880 1711-223344"))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"phone"}


@pytest.mark.parametrize("sent", ["taken@example.com", "TAKEN@Example.com"])
def test_create_duplicate_email_is_400_on_email(admin_client, make_user, sent):
    make_user(email="taken@example.com")

    response = admin_client.post("/users", new_user_payload(email=sent))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"email"}
    assert body["email"]


def test_create_duplicate_of_a_removed_user_is_still_400(admin_client, make_user):
    removed = make_user(status=Status.REMOVED)

    response = admin_client.post("/users", new_user_payload(phone=removed.phone))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"phone"}


def test_many_users_may_have_no_email(admin_client):
    for phone in ("+8801811000011", "+8801811000012"):
        response = admin_client.post("/users", new_user_payload(phone=phone, email=""))
        assert response.status_code == 201, response.content


# Detail ----------------------------------------------------------------------


def test_detail(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.MANAGER, is_staff=True)

    response = client.get(f"/users/{user.uid}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == USER_DETAIL_KEYS
    assert body["id"] == user.id
    assert body["uid"] == str(user.uid)
    assert body["kind"] == "MANAGER"
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is True


def test_detail_unknown_uid_is_404(admin_client):
    assert_not_found(admin_client.get(f"/users/{uuid.uuid4()}"))


@pytest.mark.parametrize("bad", ["123", "not-a-uuid", "0000"])
def test_detail_malformed_uid_is_404(admin_client, bad):
    assert_not_found(admin_client.get(f"/users/{bad}"))
    assert_not_found(admin_client.put(f"/users/{bad}", {"phone": "+8801811000001"}))
    assert_not_found(admin_client.delete(f"/users/{bad}"))


def test_detail_by_integer_id_is_404(admin_client, make_user):
    user = make_user()
    assert_not_found(admin_client.get(f"/users/{user.id}"))


def test_detail_of_a_removed_user_is_404(admin_client, make_user):
    user = make_user(status=Status.REMOVED)
    assert_not_found(admin_client.get(f"/users/{user.uid}"))
    assert_not_found(admin_client.put(f"/users/{user.uid}", full_payload(user)))
    assert_not_found(admin_client.delete(f"/users/{user.uid}"))


# Update ----------------------------------------------------------------------


def test_put_updates_and_returns_user_detail(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)

    response = client.put(
        f"/users/{user.uid}",
        full_payload(user, first_name="Renamed", gender="FEMALE", kind="MANAGER", is_staff=True),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == USER_DETAIL_KEYS
    assert body["first_name"] == "Renamed"
    assert body["gender"] == "FEMALE"
    assert body["kind"] == "MANAGER"
    assert body["is_staff"] is True
    user.refresh_from_db()
    assert (user.first_name, user.gender, user.kind, user.is_staff) == (
        "Renamed",
        "FEMALE",
        "MANAGER",
        True,
    )


def test_put_keeps_fields_it_does_not_send(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(
        kind=UserKind.STAFF,
        first_name="Keep",
        last_name="Me",
        email="keep@example.com",
        gender=Gender.MALE,
        is_staff=True,
    )
    password_hash = user.password

    response = client.put(f"/users/{user.uid}", {"phone": user.phone, "first_name": "Changed"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["first_name"] == "Changed"
    assert body["last_name"] == "Me"
    assert body["email"] == "keep@example.com"
    assert body["gender"] == "MALE"
    assert body["kind"] == "STAFF"
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is True
    user.refresh_from_db()
    assert user.password == password_hash
    assert (user.last_name, user.email, user.kind) == ("Me", "keep@example.com", "STAFF")


def test_put_ignores_read_only_and_unknown_keys(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)
    other_uid = str(uuid.uuid4())

    response = client.put(
        f"/users/{user.uid}",
        full_payload(
            user,
            id=user.id + 1000,
            uid=other_uid,
            created_at="2001-01-01T00:00:00+00:00",
            updated_at="2001-01-01T00:00:00+00:00",
            customer_uid=other_uid,
            surprise="ignored",
        ),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == user.id
    assert body["uid"] == str(user.uid)
    assert not body["created_at"].startswith("2001")
    assert not body["updated_at"].startswith("2001")
    assert User.objects.filter(uid=user.uid).exists()


def test_put_sets_a_new_password(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)

    response = client.put(f"/users/{user.uid}", full_payload(user, password=NEW_PASSWORD))

    assert response.status_code == 200, response.content
    assert "password" not in response.json()
    assert can_log_in(user.phone, NEW_PASSWORD)
    assert not can_log_in(user.phone, PASSWORD)


def test_put_weak_password_is_400_and_keeps_the_old_one(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)

    response = client.put(f"/users/{user.uid}", full_payload(user, password="123"))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"password"}
    assert can_log_in(user.phone, PASSWORD)


def test_put_duplicate_phone_and_email_are_400_on_that_field(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    taken = make_user(email="taken@example.com")
    user = make_user(kind=UserKind.STAFF)

    phone = client.put(f"/users/{user.uid}", full_payload(user, phone=taken.phone))
    assert phone.status_code == 400, phone.content
    assert set(phone.json()) == {"phone"}

    email = client.put(f"/users/{user.uid}", full_payload(user, email="TAKEN@example.com"))
    assert email.status_code == 400, email.content
    assert set(email.json()) == {"email"}


def test_put_keeping_own_phone_and_email_is_not_a_duplicate(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF, email="same@example.com")

    response = client.put(f"/users/{user.uid}", full_payload(user, email="SAME@example.com"))

    assert response.status_code == 200, response.content


def test_put_status_inactive_locks_the_user_out(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)
    user_client = ApiClient().bearer(user)

    response = client.put(f"/users/{user.uid}", full_payload(user, status="INACTIVE"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "INACTIVE"
    assert user_client.get("/users/me").status_code == 401
    assert not can_log_in(user.phone, PASSWORD)


# Delete ----------------------------------------------------------------------


def test_delete_is_soft(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)
    user_client = ApiClient().bearer(user)
    basic_client = ApiClient().basic(user.phone)
    assert basic_client.get("/users/me").status_code == 200

    response = client.delete(f"/users/{user.uid}")

    assert response.status_code == 204, response.content
    assert response.content == b""
    user.refresh_from_db()
    assert user.status == Status.REMOVED
    listed = client.get("/users").json()
    assert user.id not in {row["id"] for row in listed["results"]}
    assert_not_found(client.get(f"/users/{user.uid}"))
    assert not can_log_in(user.phone, PASSWORD)
    assert user_client.get("/users/me").status_code == 401
    assert basic_client.get("/users/me").status_code == 401
    assert_not_found(client.delete(f"/users/{user.uid}"))


def test_cannot_delete_yourself(client_as):
    client, admin = client_as(UserKind.ADMIN)

    assert_forbidden(client.delete(f"/users/{admin.uid}"))

    admin.refresh_from_db()
    assert admin.status == Status.ACTIVE


# Roles -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN])
def test_admins_read_write_and_delete_users(client_as, make_user, kind):
    client, _ = client_as(kind)
    target = make_user(kind=UserKind.MANAGER)

    assert client.get("/users").status_code == 200
    assert client.get(f"/users/{target.uid}").status_code == 200
    created = client.post("/users", new_user_payload(kind="MANAGER"))
    assert created.status_code == 201, created.content
    updated = client.put(f"/users/{target.uid}", full_payload(target, first_name="Upd"))
    assert updated.status_code == 200, updated.content
    assert client.delete(f"/users/{target.uid}").status_code == 204


@pytest.mark.parametrize("kind", [UserKind.STAFF, UserKind.CUSTOMER, UserKind.OTHER])
def test_manager_manages_staff_customers_and_others(client_as, make_user, kind):
    client, _ = client_as(UserKind.MANAGER)
    target = make_user(kind=kind)

    created = client.post("/users", new_user_payload(kind=kind))
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == kind
    updated = client.put(f"/users/{target.uid}", full_payload(target, first_name="Upd"))
    assert updated.status_code == 200, updated.content
    assert updated.json()["first_name"] == "Upd"
    assert client.delete(f"/users/{target.uid}").status_code == 204


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN, UserKind.MANAGER])
def test_manager_cannot_create_admins_or_managers(client_as, kind):
    client, _ = client_as(UserKind.MANAGER)

    assert_forbidden(client.post("/users", new_user_payload(kind=kind)))

    assert not User.objects.filter(phone="+8801811000001").exists()


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN, UserKind.MANAGER])
def test_manager_cannot_change_or_delete_admins_or_other_managers(client_as, make_user, kind):
    client, _ = client_as(UserKind.MANAGER)
    target = make_user(kind=kind, first_name="Original")

    assert client.get(f"/users/{target.uid}").status_code == 200
    assert_forbidden(client.put(f"/users/{target.uid}", full_payload(target, first_name="Hack")))
    assert_forbidden(client.delete(f"/users/{target.uid}"))

    target.refresh_from_db()
    assert target.first_name == "Original"
    assert target.status == Status.ACTIVE


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER, UserKind.SUPER_ADMIN])
def test_manager_cannot_promote_a_staff_member(client_as, make_user, kind):
    client, _ = client_as(UserKind.MANAGER)
    target = make_user(kind=UserKind.STAFF)

    assert_forbidden(client.put(f"/users/{target.uid}", full_payload(target, kind=kind)))

    target.refresh_from_db()
    assert target.kind == UserKind.STAFF


def test_staff_reads_users_but_cannot_write(client_as, make_user):
    client, _ = client_as(UserKind.STAFF)
    target = make_user(kind=UserKind.OTHER, first_name="Original")

    assert client.get("/users").status_code == 200
    assert client.get(f"/users/{target.uid}").status_code == 200
    assert_forbidden(client.post("/users", new_user_payload(kind="OTHER")))
    assert_forbidden(client.put(f"/users/{target.uid}", full_payload(target, first_name="X")))
    assert_forbidden(client.delete(f"/users/{target.uid}"))

    target.refresh_from_db()
    assert target.first_name == "Original" and target.status == Status.ACTIVE
    assert not User.objects.filter(phone="+8801811000001").exists()


@pytest.mark.parametrize("kind", [UserKind.CUSTOMER, UserKind.OTHER])
def test_customers_and_others_cannot_see_users(client_as, make_user, kind):
    client, me = client_as(kind)
    target = make_user(kind=UserKind.OTHER)

    assert_forbidden(client.get("/users"))
    assert_forbidden(client.get(f"/users/{target.uid}"))
    assert_forbidden(client.get(f"/users/{me.uid}"))
    assert_forbidden(client.post("/users", new_user_payload(kind="OTHER")))
    assert_forbidden(client.put(f"/users/{target.uid}", full_payload(target)))
    assert_forbidden(client.delete(f"/users/{target.uid}"))


def test_admin_cannot_create_or_change_a_super_admin(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    boss = make_user(kind=UserKind.SUPER_ADMIN, first_name="Boss")
    staff = make_user(kind=UserKind.STAFF)

    assert_forbidden(client.post("/users", new_user_payload(kind="SUPER_ADMIN")))
    assert_forbidden(client.put(f"/users/{boss.uid}", full_payload(boss, first_name="Hack")))
    assert_forbidden(client.delete(f"/users/{boss.uid}"))
    assert_forbidden(client.put(f"/users/{staff.uid}", full_payload(staff, kind="SUPER_ADMIN")))

    boss.refresh_from_db()
    staff.refresh_from_db()
    assert boss.first_name == "Boss" and boss.status == Status.ACTIVE
    assert staff.kind == UserKind.STAFF


def test_admin_creates_and_changes_admins(client_as, make_user):
    client, _ = client_as(UserKind.ADMIN)
    other_admin = make_user(kind=UserKind.ADMIN)
    staff = make_user(kind=UserKind.STAFF)

    created = client.post("/users", new_user_payload(kind="ADMIN"))
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "ADMIN"
    assert client.put(f"/users/{staff.uid}", full_payload(staff, kind="ADMIN")).json()["kind"] == (
        "ADMIN"
    )
    assert client.put(f"/users/{other_admin.uid}", full_payload(other_admin)).status_code == 200


def test_super_admin_creates_and_changes_super_admins(client_as, make_user):
    client, _ = client_as(UserKind.SUPER_ADMIN)
    other = make_user(kind=UserKind.SUPER_ADMIN)
    admin = make_user(kind=UserKind.ADMIN)

    created = client.post("/users", new_user_payload(kind="SUPER_ADMIN"))
    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "SUPER_ADMIN"
    renamed = client.put(f"/users/{other.uid}", full_payload(other, first_name="Renamed"))
    assert renamed.status_code == 200, renamed.content
    promoted = client.put(f"/users/{admin.uid}", full_payload(admin, kind="SUPER_ADMIN"))
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["kind"] == "SUPER_ADMIN"
    assert client.delete(f"/users/{other.uid}").status_code == 204


@pytest.mark.parametrize("kind", [UserKind.MANAGER, UserKind.ADMIN])
def test_no_one_promotes_themselves_through_their_own_uid(client_as, kind):
    client, me = client_as(kind)

    response = client.put(
        f"/users/{me.uid}", full_payload(me, kind="SUPER_ADMIN", status="INACTIVE", is_staff=True)
    )

    assert response.status_code == 200, response.content
    me.refresh_from_db()
    assert (me.kind, me.status, me.is_staff) == (kind, Status.ACTIVE, False)


# /users/me -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(UserKind))
def test_me_for_every_kind(client_as, kind):
    client, user = client_as(kind)

    response = client.get("/users/me")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ME_KEYS
    assert body["id"] == user.id
    assert body["uid"] == str(user.uid)
    assert body["kind"] == kind
    assert body["customer_uid"] is None


def test_me_put_updates_own_profile(client_as):
    client, user = client_as(UserKind.OTHER, first_name="Old", last_name="Name")

    response = client.put(
        "/users/me",
        {
            "first_name": "New",
            "last_name": "Person",
            "phone": "+8801911000000",
            "email": "new.person@example.com",
            "gender": "MALE",
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ME_KEYS
    assert body["first_name"] == "New"
    assert body["last_name"] == "Person"
    assert body["phone"] == "+8801911000000"
    assert body["email"] == "new.person@example.com"
    assert body["gender"] == "MALE"
    assert body["customer_uid"] is None
    user.refresh_from_db()
    assert user.phone == "+8801911000000"
    assert can_log_in("+8801911000000", PASSWORD)


@pytest.mark.parametrize("kind", [UserKind.OTHER, UserKind.STAFF, UserKind.MANAGER])
def test_me_put_ignores_kind_status_and_is_staff(client_as, kind):
    client, user = client_as(kind)

    response = client.put(
        "/users/me",
        full_payload(user, first_name="Me", kind="SUPER_ADMIN", status="INACTIVE", is_staff=True),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["first_name"] == "Me"
    assert body["kind"] == kind
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is False
    user.refresh_from_db()
    assert (user.kind, user.status, user.is_staff) == (kind, Status.ACTIVE, False)
    assert client.get("/users/me").status_code == 200


def test_me_put_refuses_a_password_pointing_to_the_password_change(client_as):
    client, user = client_as(UserKind.OTHER)

    response = client.put("/users/me", full_payload(user, password=NEW_PASSWORD))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"password"}
    assert "/users/me/password" in response.json()["password"][0]
    assert can_log_in(user.phone, PASSWORD)
    assert not can_log_in(user.phone, NEW_PASSWORD)


@pytest.mark.parametrize("blank", ["", None])
def test_me_put_ignores_a_blank_password(client_as, blank):
    client, user = client_as(UserKind.OTHER)

    response = client.put("/users/me", full_payload(user, password=blank, first_name="New"))

    assert response.status_code == 200, response.content
    assert response.json()["first_name"] == "New"
    assert can_log_in(user.phone, PASSWORD)


def test_me_put_duplicate_phone_is_400(client_as, make_user):
    client, user = client_as(UserKind.OTHER)
    taken = make_user()

    response = client.put("/users/me", full_payload(user, phone=taken.phone))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"phone"}


def test_me_put_keeps_fields_it_does_not_send(client_as):
    client, user = client_as(UserKind.OTHER, last_name="Kept", gender=Gender.FEMALE)

    response = client.put("/users/me", {"phone": user.phone, "first_name": "Only"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["first_name"] == "Only"
    assert body["last_name"] == "Kept"
    assert body["gender"] == "FEMALE"
    assert body["email"] == user.email


def test_me_put_missing_phone_is_400(client_as):
    client, _ = client_as(UserKind.OTHER)

    response = client.put("/users/me", {"first_name": "X"})

    assert response.status_code == 400, response.content
    assert response.json() == {"phone": ["This field is required."]}
