"""Authentication over HTTP: login, refresh, Bearer, Basic (api-contract.md, Authentication)."""

import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings

from accounts.models import User
from accounts.tokens import token_issue
from core.enums import Status, UserKind
from tests.accounts.shapes import ACCESS_TOKEN_KEYS, ME_KEYS, TOKEN_PAIR_KEYS
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Another-Secret-77"
FORGERY_KEY = "a-signing-key-that-is-not-the-servers-own-key"


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def login(api, login_name: str, password: str = PASSWORD):
    return api.post("/users/login", {"phone": login_name, "password": password})


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert response.has_header("WWW-Authenticate")
    assert "Bearer" in response["WWW-Authenticate"]


def change_password(user: User, password: str = NEW_PASSWORD) -> None:
    user.set_password(password)
    user.save()


# Login -----------------------------------------------------------------------


def test_login_by_phone_returns_token_pair_and_me(api, make_user):
    user = make_user(kind=UserKind.STAFF)
    before = int(time.time())

    response = login(api, user.phone)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == TOKEN_PAIR_KEYS
    assert set(body["user"]) == ME_KEYS
    assert body["user"]["id"] == user.id
    assert body["user"]["uid"] == str(user.uid)
    assert body["user"]["phone"] == user.phone
    assert body["user"]["kind"] == "STAFF"
    assert body["user"]["status"] == "ACTIVE"
    assert body["user"]["customer_uid"] is None
    access_lifetime = int(settings.JWT_ACCESS_TOKEN_LIFETIME.total_seconds())
    refresh_lifetime = int(settings.JWT_REFRESH_TOKEN_LIFETIME.total_seconds())
    after = int(time.time())
    assert isinstance(body["access_token_exp"], int)
    assert isinstance(body["refresh_token_exp"], int)
    assert before + access_lifetime <= body["access_token_exp"] <= after + access_lifetime
    assert before + refresh_lifetime <= body["refresh_token_exp"] <= after + refresh_lifetime
    assert body["access_token"] != body["refresh_token"]

    me = api.get("/users/me", **bearer(body["access_token"]))
    assert me.status_code == 200, me.content
    assert me.json()["id"] == user.id


def test_login_records_last_login(api, make_user):
    user = make_user()
    assert user.last_login is None
    assert login(api, user.phone).status_code == 200
    user.refresh_from_db()
    assert user.last_login is not None


def test_default_token_lifetimes():
    assert settings.JWT_ACCESS_TOKEN_LIFETIME == timedelta(minutes=60)
    assert settings.JWT_REFRESH_TOKEN_LIFETIME == timedelta(days=30)


@pytest.mark.parametrize(
    "stored, sent",
    [
        ("rahim@example.com", "rahim@example.com"),
        ("rahim@example.com", "RAHIM@Example.COM"),
        ("Rahim.Khan@Example.com", "rahim.khan@example.com"),
    ],
)
def test_login_by_email_is_case_insensitive(api, make_user, stored, sent):
    user = make_user(email=stored)

    response = login(api, sent)

    assert response.status_code == 200, response.content
    assert response.json()["user"]["id"] == user.id


@pytest.mark.parametrize("which", ["wrong password", "unknown phone", "unknown email"])
def test_login_with_wrong_credentials_is_401_with_detail_and_message(api, make_user, which):
    user = make_user()
    login_name, password = {
        "wrong password": (user.phone, "not-the-password"),
        "unknown phone": ("+8801999999999", PASSWORD),
        "unknown email": ("nobody@example.com", PASSWORD),
    }[which]

    response = login(api, login_name, password)

    assert_unauthorized(response)
    body = response.json()
    assert set(body) == {"detail", "message"}
    assert isinstance(body["message"], str) and body["message"]
    assert "access_token" not in body


def test_login_answers_the_same_for_unknown_user_and_wrong_password(api, make_user):
    user = make_user()
    wrong_password = login(api, user.phone, "not-the-password")
    unknown_user = login(api, "+8801999999999", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"password": PASSWORD}, "phone"),
        ({"phone": "+8801711000000"}, "password"),
        ({"phone": "", "password": PASSWORD}, "phone"),
        ({"phone": "+8801711000000", "password": ""}, "password"),
    ],
)
def test_login_missing_field_is_400_on_that_field(api, db, payload, field):
    response = api.post("/users/login", payload)

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {field}
    assert isinstance(body[field], list) and body[field]
    assert all(isinstance(message, str) for message in body[field])


def test_login_missing_field_message_is_drf_required(api, db):
    response = api.post("/users/login", {"password": PASSWORD})
    assert response.json() == {"phone": ["This field is required."]}


@pytest.mark.parametrize("raw", ["{}", ""])
def test_login_empty_body_is_400_per_field(api, db, raw):
    response = api.post("/users/login", raw)

    assert response.status_code == 400, response.content
    assert response.json() == {
        "phone": ["This field is required."],
        "password": ["This field is required."],
    }


@pytest.mark.parametrize("raw", ['{"phone": "+8801711000000", ', "not json", "{'phone': 1}"])
def test_login_broken_json_is_400_detail(api, db, raw):
    response = api.post("/users/login", raw)

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str) and body["detail"]


@pytest.mark.parametrize("raw", ["[]", '"text"', "42", "null"])
def test_login_body_that_is_not_an_object_is_400(api, db, raw):
    response = api.post("/users/login", raw)
    assert response.status_code == 400, response.content
    assert isinstance(response.json(), dict)


def test_login_wrong_types_are_400_on_the_field(api, db):
    response = api.post("/users/login", {"phone": 8801711000000, "password": ["x"]})

    assert response.status_code == 400, response.content
    assert set(response.json()) == {"phone", "password"}


def test_login_is_public_even_with_bad_credentials_header(api, make_user):
    user = make_user()
    response = api.post(
        "/users/login",
        {"phone": user.phone, "password": PASSWORD},
        HTTP_AUTHORIZATION="Bearer garbage",
    )
    assert response.status_code == 200, response.content


# Refresh ---------------------------------------------------------------------


def test_refresh_gives_a_new_usable_access_token(api, make_user):
    user = make_user()
    tokens = login(api, user.phone).json()

    response = api.post("/users/login/refresh", {"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ACCESS_TOKEN_KEYS
    assert isinstance(body["access_token_exp"], int)
    assert body["access_token_exp"] > int(time.time())
    me = api.get("/users/me", **bearer(body["access_token"]))
    assert me.status_code == 200, me.content
    assert me.json()["id"] == user.id


@pytest.mark.parametrize("payload", [{}, {"refresh_token": ""}, {"token": "x"}])
def test_refresh_missing_token_is_400(api, db, payload):
    response = api.post("/users/login/refresh", payload)

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"refresh_token"}
    assert body["refresh_token"]


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"])
def test_refresh_with_garbage_is_401(api, db, garbage):
    response = api.post("/users/login/refresh", {"refresh_token": garbage})
    assert_unauthorized(response)


def test_refresh_with_an_expired_refresh_token_is_401(api, make_user):
    user = make_user()
    with override_settings(JWT_REFRESH_TOKEN_LIFETIME=timedelta(seconds=-30)):
        expired = token_issue(user=user, token_type="refresh").token

    response = api.post("/users/login/refresh", {"refresh_token": expired})

    assert_unauthorized(response)


def test_refresh_with_a_token_signed_by_another_key_is_401(api, make_user):
    user = make_user()
    genuine = jwt.decode(
        token_issue(user=user, token_type="refresh").token,
        options={"verify_signature": False},
    )
    forged = jwt.encode(genuine, FORGERY_KEY, algorithm="HS256")

    response = api.post("/users/login/refresh", {"refresh_token": forged})

    assert_unauthorized(response)


def test_refresh_with_an_access_token_is_401(api, make_user):
    user = make_user()
    tokens = login(api, user.phone).json()

    response = api.post("/users/login/refresh", {"refresh_token": tokens["access_token"]})

    assert_unauthorized(response)


def test_refresh_token_is_not_accepted_as_bearer(api, make_user):
    user = make_user()
    tokens = login(api, user.phone).json()

    response = api.get("/users/me", **bearer(tokens["refresh_token"]))

    assert_unauthorized(response)


def test_refresh_is_refused_after_the_password_changes(api, make_user):
    user = make_user()
    tokens = login(api, user.phone).json()
    change_password(user)

    response = api.post("/users/login/refresh", {"refresh_token": tokens["refresh_token"]})

    assert_unauthorized(response)


@pytest.mark.parametrize("status", [Status.INACTIVE, Status.REMOVED, Status.DRAFT])
def test_refresh_is_refused_for_a_user_who_is_not_active(api, make_user, status):
    user = make_user()
    tokens = login(api, user.phone).json()
    User.objects.filter(pk=user.pk).update(status=status)

    response = api.post("/users/login/refresh", {"refresh_token": tokens["refresh_token"]})

    assert_unauthorized(response)


# Bearer ----------------------------------------------------------------------


def test_bearer_token_authenticates(make_user):
    user = make_user()
    response = ApiClient().bearer(user).get("/users/me")
    assert response.status_code == 200, response.content
    assert response.json()["uid"] == str(user.uid)


def test_expired_access_token_is_401(api, make_user):
    user = make_user()
    with override_settings(JWT_ACCESS_TOKEN_LIFETIME=timedelta(seconds=-30)):
        expired = token_issue(user=user, token_type="access").token

    response = api.get("/users/me", **bearer(expired))

    assert_unauthorized(response)


def test_access_token_lifetime_follows_the_setting(api, make_user):
    user = make_user()
    with override_settings(JWT_ACCESS_TOKEN_LIFETIME=timedelta(minutes=5)):
        before = int(time.time())
        body = login(api, user.phone).json()
    assert before + 300 <= body["access_token_exp"] <= int(time.time()) + 300


def test_access_token_of_a_deleted_user_is_401(api, make_user):
    user = make_user()
    token = token_issue(user=user, token_type="access").token
    User.objects.filter(pk=user.pk).delete()

    response = api.get("/users/me", **bearer(token))

    assert_unauthorized(response)


def test_access_token_with_a_tampered_subject_is_401(api, make_user):
    user = make_user()
    other = make_user()
    payload = jwt.decode(
        token_issue(user=user, token_type="access").token, options={"verify_signature": False}
    )
    payload["sub"] = str(other.pk)
    tampered = jwt.encode(payload, FORGERY_KEY, algorithm="HS256")

    response = api.get("/users/me", **bearer(tampered))

    assert_unauthorized(response)


@pytest.mark.parametrize("status", [Status.INACTIVE, Status.REMOVED])
def test_user_who_is_not_active_is_refused_with_bearer(api, make_user, status):
    user = make_user()
    token = login(api, user.phone).json()["access_token"]
    assert api.get("/users/me", **bearer(token)).status_code == 200
    User.objects.filter(pk=user.pk).update(status=status)

    response = api.get("/users/me", **bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize("status", [Status.INACTIVE, Status.REMOVED])
def test_user_who_is_not_active_is_refused_with_basic(make_user, status):
    user = make_user()
    client = ApiClient().basic(user.phone)
    assert client.get("/users/me").status_code == 200
    User.objects.filter(pk=user.pk).update(status=status)

    response = client.get("/users/me")

    assert_unauthorized(response)


@pytest.mark.parametrize("status", [Status.INACTIVE, Status.REMOVED, Status.DRAFT])
def test_user_who_is_not_active_cannot_log_in(api, make_user, status):
    user = make_user(status=status)

    response = login(api, user.phone)

    assert_unauthorized(response)
    assert set(response.json()) == {"detail", "message"}


def test_token_issued_before_a_password_change_is_401(api, make_user):
    user = make_user()
    token = login(api, user.phone).json()["access_token"]
    assert api.get("/users/me", **bearer(token)).status_code == 200

    change_password(user)

    assert_unauthorized(api.get("/users/me", **bearer(token)))
    fresh = login(api, user.phone, NEW_PASSWORD)
    assert fresh.status_code == 200, fresh.content
    assert api.get("/users/me", **bearer(fresh.json()["access_token"])).status_code == 200


def test_password_change_through_the_api_invalidates_old_tokens(client_as, make_user):
    admin_client, _ = client_as(UserKind.ADMIN)
    user = make_user(kind=UserKind.STAFF)
    user_client = ApiClient().bearer(user)
    assert user_client.get("/users/me").status_code == 200

    response = admin_client.put(
        f"/users/{user.uid}", {"phone": user.phone, "password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.content

    assert_unauthorized(user_client.get("/users/me"))


# Basic -----------------------------------------------------------------------


def test_basic_auth_by_phone(make_user):
    user = make_user()
    response = ApiClient().basic(user.phone).get("/users/me")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == user.id


def test_basic_auth_by_email_in_any_case(make_user):
    user = make_user(email="karim@example.com")
    for login_name in ("karim@example.com", "KARIM@EXAMPLE.COM"):
        response = ApiClient().basic(login_name).get("/users/me")
        assert response.status_code == 200, response.content
        assert response.json()["id"] == user.id


def test_basic_auth_with_wrong_password_is_401(make_user):
    user = make_user()
    assert_unauthorized(ApiClient().basic(user.phone, "wrong-password").get("/users/me"))
    assert_unauthorized(ApiClient().basic("+8801999999999").get("/users/me"))


def test_basic_auth_works_on_other_protected_routes(make_user):
    user = make_user(kind=UserKind.ADMIN)
    response = ApiClient().basic(user.phone).get("/users")
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1


@pytest.fixture
def check_password_calls(monkeypatch):
    """Every call of ``User.check_password`` (the PBKDF2 cost the Basic cache saves)."""
    calls = []
    original = User.check_password

    def counting(self, raw_password):
        calls.append(self.pk)
        return original(self, raw_password)

    monkeypatch.setattr(User, "check_password", counting)
    return calls


def test_basic_verdict_is_cached(make_user, check_password_calls):
    user = make_user()
    client = ApiClient().basic(user.phone)

    assert client.get("/users/me").status_code == 200
    assert check_password_calls == [user.pk]
    for _ in range(3):
        assert client.get("/users/me").status_code == 200
    assert check_password_calls == [user.pk]


def test_wrong_basic_password_is_never_cached_as_valid(make_user, check_password_calls):
    user = make_user()
    client = ApiClient().basic(user.phone, "wrong-password")

    assert client.get("/users/me").status_code == 401
    assert client.get("/users/me").status_code == 401
    assert len(check_password_calls) == 2


def test_basic_verdict_is_forgotten_when_the_password_changes(make_user, check_password_calls):
    user = make_user()
    old_client = ApiClient().basic(user.phone, PASSWORD)
    assert old_client.get("/users/me").status_code == 200
    assert old_client.get("/users/me").status_code == 200
    assert len(check_password_calls) == 1

    change_password(user)

    assert_unauthorized(old_client.get("/users/me"))
    new_client = ApiClient().basic(user.phone, NEW_PASSWORD)
    assert new_client.get("/users/me").status_code == 200
    calls_after_change = len(check_password_calls)
    assert new_client.get("/users/me").status_code == 200
    assert len(check_password_calls) == calls_after_change
    assert_unauthorized(old_client.get("/users/me"))


@pytest.mark.parametrize("status", [Status.INACTIVE, Status.REMOVED])
def test_basic_verdict_is_forgotten_when_the_user_is_no_longer_active(
    make_user, check_password_calls, status
):
    user = make_user()
    client = ApiClient().basic(user.phone)
    assert client.get("/users/me").status_code == 200
    assert len(check_password_calls) == 1

    User.objects.filter(pk=user.pk).update(status=status)
    assert_unauthorized(client.get("/users/me"))

    User.objects.filter(pk=user.pk).update(status=Status.ACTIVE)
    assert client.get("/users/me").status_code == 200


def _raw_cache_entries() -> list[tuple[bytes, bytes]]:
    """Every (key, stored value) of the default cache, as the backend keeps them."""
    from django.core.cache import cache

    raw = getattr(cache, "_cache", None)
    if isinstance(raw, dict):  # LocMemCache: pickled values
        return [(key.encode(), value) for key, value in raw.items()]
    if hasattr(raw, "get_client"):  # RedisCache
        client = raw.get_client()
        return [(key, client.get(key)) for key in client.keys("*")]
    pytest.skip(f"cannot inspect a {type(cache).__name__}")


def test_basic_cache_never_stores_the_password(make_user):
    user = make_user()
    assert ApiClient().basic(user.phone).get("/users/me").status_code == 200

    entries = [(k, v) for k, v in _raw_cache_entries() if b"auth:basic:" in k]
    assert entries, "the verdict should be cached"
    for key, value in entries:
        assert PASSWORD.encode() not in key
        assert PASSWORD.encode() not in value
        assert user.phone.encode() not in key


# No or bad credentials -------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/users/me", "/users", f"/users/{'0' * 8}-0000-0000-0000-{'0' * 12}"]
)
def test_no_credentials_is_401_with_www_authenticate_never_403(api, db, path):
    response = api.get(path)

    assert_unauthorized(response)
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer garbage", "Basic", "Basic !!!not-base64", "Token abc", "garbage"],
)
def test_malformed_authorization_header_is_401(api, db, header):
    response = api.get("/users/me", HTTP_AUTHORIZATION=header)
    assert_unauthorized(response)


def test_no_credentials_on_writes_is_401(api, db):
    assert_unauthorized(api.post("/users", {"phone": "+8801711000000"}))
    assert_unauthorized(api.put("/users/me", {"phone": "+8801711000000"}))


@pytest.mark.parametrize("changed", ["phone", "email"])
def test_basic_verdict_is_forgotten_when_the_login_changes(
    make_user, check_password_calls, changed
):
    user = make_user(phone="+8801711000100", email="old@example.com")
    old_login = user.phone if changed == "phone" else "OLD@example.com"
    client = ApiClient().basic(old_login)
    assert client.get("/users/me").status_code == 200

    new_value = "+8801711000200" if changed == "phone" else "new@example.com"
    response = client.put(
        "/users/me", {"phone": user.phone, "email": user.email, changed: new_value}
    )
    assert response.status_code == 200, response.content

    assert_unauthorized(client.get("/users/me"))
    assert ApiClient().basic(new_value).get("/users/me").status_code == 200
    # someone who takes over the old login gets their own account, never the cached one
    newcomer = make_user(**{changed: old_login.lower()})
    newcomer_me = ApiClient().basic(old_login).get("/users/me")
    assert newcomer_me.status_code == 200, newcomer_me.content
    assert newcomer_me.json()["id"] == newcomer.id
