"""``POST /users/register`` (public self sign-up; api-contract.md, Users)."""

import pytest

from accounts.models import User
from core.enums import Status, UserKind
from tests.accounts.shapes import ME_KEYS, TOKEN_PAIR_KEYS, USER_DETAIL_KEYS
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db

PASSWORD = "Sign-Me-Up-2024"


def payload(**overrides):
    body = {
        "first_name": "Farhana",
        "last_name": "Akter",
        "phone": "+8801611000001",
        "email": "farhana@example.com",
        "gender": "FEMALE",
        "password": PASSWORD,
        "confirm_password": PASSWORD,
    }
    body.update(overrides)
    return body


def test_register_creates_an_active_other_user(api):
    response = api.post("/users/register", payload())

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == USER_DETAIL_KEYS
    assert body["kind"] == "OTHER"
    assert body["status"] == "ACTIVE"
    assert body["is_staff"] is False
    assert body["first_name"] == "Farhana"
    assert body["last_name"] == "Akter"
    assert body["phone"] == "+8801611000001"
    assert body["email"] == "farhana@example.com"
    assert body["gender"] == "FEMALE"
    assert body["image"] is None
    assert "password" not in body and "confirm_password" not in body
    user = User.objects.get(pk=body["id"])
    assert str(user.uid) == body["uid"]
    assert (user.kind, user.status, user.is_staff, user.is_superuser) == (
        UserKind.OTHER,
        Status.ACTIVE,
        False,
        False,
    )
    assert user.check_password(PASSWORD)


def test_register_ignores_kind_status_and_is_staff(api):
    response = api.post(
        "/users/register",
        payload(kind="SUPER_ADMIN", status="INACTIVE", is_staff=True, is_superuser=True, id=5),
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["status"], body["is_staff"]) == ("OTHER", "ACTIVE", False)
    user = User.objects.get(phone="+8801611000001")
    assert user.kind == UserKind.OTHER and not user.is_superuser


def test_registered_user_logs_in_and_sees_only_me(api):
    assert api.post("/users/register", payload()).status_code == 201

    login = api.post("/users/login", {"phone": "+8801611000001", "password": PASSWORD})
    assert login.status_code == 200, login.content
    tokens = login.json()
    assert set(tokens) == TOKEN_PAIR_KEYS
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}

    me = api.get("/users/me", **auth)
    assert me.status_code == 200, me.content
    assert set(me.json()) == ME_KEYS
    assert me.json()["kind"] == "OTHER"
    assert me.json()["customer_uid"] is None

    users = api.get("/users", **auth)
    assert users.status_code == 403, users.content
    assert set(users.json()) == {"detail"}

    by_email = ApiClient().basic("FARHANA@example.com", PASSWORD).get("/users/me")
    assert by_email.status_code == 200, by_email.content


def test_register_is_public_even_with_bad_credentials(api):
    response = api.post("/users/register", payload(), HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 201, response.content


def test_password_mismatch_is_400_on_confirm_password(api):
    response = api.post("/users/register", payload(confirm_password="Something-Else-99"))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"confirm_password"}
    assert body["confirm_password"] and isinstance(body["confirm_password"][0], str)
    assert not User.objects.filter(phone="+8801611000001").exists()


@pytest.mark.parametrize("weak", ["123", "12345678901", "password", "short1"])
def test_weak_password_is_400_on_password(api, weak):
    response = api.post("/users/register", payload(password=weak, confirm_password=weak))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"password"}
    assert body["password"] and all(isinstance(m, str) for m in body["password"])
    assert not User.objects.filter(phone="+8801611000001").exists()


def test_password_too_similar_to_the_user_is_400_on_password(api):
    similar = "farhana@example.com"
    response = api.post("/users/register", payload(password=similar, confirm_password=similar))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"password"}


def test_duplicate_phone_is_400_on_phone(api, make_user):
    make_user(phone="+8801611000001")

    response = api.post("/users/register", payload())

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"phone"}
    assert body["phone"]
    assert User.objects.filter(phone="+8801611000001").count() == 1


def test_duplicate_email_in_another_case_is_400_on_email(api, make_user):
    make_user(email="farhana@example.com")

    response = api.post("/users/register", payload(email="Farhana@Example.com"))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"email"}


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.com", "x y@example.com"])
def test_invalid_email_is_400_on_email(api, email):
    response = api.post("/users/register", payload(email=email))

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"email"}
    assert body["email"]


@pytest.mark.parametrize("phone", ["abc", "12", "+88017110000001234567"])
def test_invalid_phone_is_400_on_phone(api, phone):
    response = api.post("/users/register", payload(phone=phone))

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"phone"}


@pytest.mark.parametrize("field", ["phone", "password", "confirm_password"])
def test_missing_required_field_is_400_on_that_field(api, field):
    body = payload()
    del body[field]

    response = api.post("/users/register", body)

    assert response.status_code == 400, response.content
    assert response.json() == {field: ["This field is required."]}


def test_empty_body_is_400_per_required_field(api):
    response = api.post("/users/register", {})

    assert response.status_code == 400, response.content
    body = response.json()
    assert {"phone", "password", "confirm_password"} <= set(body)
    assert body["phone"] == ["This field is required."]


def test_register_with_trailing_slash(api):
    response = api.post("/api/v1/users/register/", payload())
    assert response.status_code == 201, response.content
    assert set(response.json()) == USER_DETAIL_KEYS


@pytest.mark.parametrize("email", [None, ""])
def test_email_may_be_left_out_or_blank(api, email):
    body = payload(phone="+8801611000002")
    if email is None:
        del body["email"]
    else:
        body["email"] = email
    response = api.post("/users/register", body)
    assert response.status_code == 201, response.content
    assert response.json()["email"] == ""
    # and two users without an email do not collide
    second = api.post("/users/register", {**body, "phone": "+8801611000003"})
    assert second.status_code == 201, second.content
    assert User.objects.filter(email="").count() == 2
