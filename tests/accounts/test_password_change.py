"""``POST /users/me/password`` (*extra*; api-contract.md, Users; issue 8, item 12)."""

import time

import pytest

from accounts.models import User
from accounts.tokens import token_issue
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "A-Fresh-Secret-2025"


def change(client, old=PASSWORD, new=NEW_PASSWORD):
    return client.post("/users/me/password", {"old_password": old, "new_password": new})


def can_log_in(phone, password):
    response = ApiClient().post("/users/login", {"phone": phone, "password": password})
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def test_password_change_is_204_and_ends_earlier_tokens_and_basic_verdicts(make_user):
    user = make_user()
    bearer = ApiClient().bearer(user)
    refresh = token_issue(user=user, token_type="refresh").token
    old_basic = ApiClient().basic(user.phone, PASSWORD)
    assert old_basic.get("/users/me").status_code == 200  # verdict now remembered

    response = change(ApiClient().bearer(user))

    assert response.status_code == 204, response.content
    assert response.content == b""
    assert bearer.get("/users/me").status_code == 401
    assert ApiClient().post("/users/login/refresh", {"refresh_token": refresh}).status_code == 401
    assert old_basic.get("/users/me").status_code == 401
    assert ApiClient().basic(user.phone, NEW_PASSWORD).get("/users/me").status_code == 200
    assert can_log_in(user.phone, NEW_PASSWORD)
    assert not can_log_in(user.phone, PASSWORD)


def test_password_change_with_basic(make_user):
    user = make_user()
    response = change(ApiClient().basic(user.phone, PASSWORD))
    assert response.status_code == 204, response.content
    assert can_log_in(user.phone, NEW_PASSWORD)


def test_wrong_old_password_is_400_on_old_password(make_user):
    user = make_user()

    response = change(ApiClient().bearer(user), old="not-the-password")

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"old_password"}
    assert body["old_password"] and isinstance(body["old_password"][0], str)
    assert can_log_in(user.phone, PASSWORD)


def test_wrong_old_passwords_are_throttled_as_failed_credentials(make_user, monkeypatch):
    real, started = time.time, time.time()  # 1 s into a throttle window: none ends here
    monkeypatch.setattr(time, "time", lambda: 1_000_021.0 + (real() - started))
    user = make_user()
    client = ApiClient().bearer(user)
    for _ in range(5):
        assert change(client, old="guess").status_code == 400
    response = change(client)
    assert response.status_code == 429, response.content
    assert response.has_header("Retry-After")
    assert can_log_in(make_user().phone, PASSWORD)  # other logins are not held up


@pytest.mark.parametrize("weak", ["123", "password", "short1", "12345678901"])
def test_weak_new_password_is_400_on_new_password(make_user, weak):
    user = make_user()

    response = change(ApiClient().bearer(user), new=weak)

    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"new_password"}
    assert all(isinstance(message, str) for message in body["new_password"])
    assert can_log_in(user.phone, PASSWORD)


def test_new_password_like_the_user_is_400_on_new_password(make_user):
    user = make_user(email="similar.person@example.com")
    response = change(ApiClient().bearer(user), new="similar.person@example.com")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"new_password"}


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, {"old_password", "new_password"}),
        ({"old_password": PASSWORD}, {"new_password"}),
        ({"new_password": NEW_PASSWORD, "old_password": ""}, {"old_password"}),
    ],
)
def test_missing_fields_are_400_on_each(make_user, body, fields):
    user = make_user()
    response = ApiClient().bearer(user).post("/users/me/password", body)
    assert response.status_code == 400, response.content
    assert set(response.json()) == fields
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_password_change_needs_credentials(db):
    response = ApiClient().post(
        "/users/me/password", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 401, response.content
    assert response.has_header("WWW-Authenticate")


def test_password_change_with_trailing_slash(make_user):
    user = make_user()
    response = ApiClient().bearer(user).post(
        "/api/v1/users/me/password/", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.content
