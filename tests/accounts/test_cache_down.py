"""A cache that is down means no cache: credentials are still checked, throttles let the
request through, nothing answers 500 (issue 8, items 9 and 10)."""

import socket

import pytest
from django.test import override_settings

from accounts.tokens import token_issue
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cache_down():
    location = f"redis://127.0.0.1:{_closed_port()}/0"
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                            "LOCATION": location}}
    ):
        yield


def test_basic_auth_answers_with_the_cache_down(make_user, cache_down):
    user = make_user()
    for _ in range(2):
        response = ApiClient().basic(user.phone).get("/users/me")
        assert response.status_code == 200, response.content
        assert response.json()["id"] == user.id
    assert ApiClient().basic(user.phone, "wrong").get("/users/me").status_code == 401


def test_login_and_refresh_answer_with_the_cache_down(make_user, cache_down):
    user = make_user()
    api = ApiClient()
    for _ in range(7):  # more failures than the throttle allows: it cannot count them
        assert api.post("/users/login", {"phone": user.phone, "password": "x"}).status_code == 401
    response = api.post("/users/login", {"phone": user.phone, "password": PASSWORD})
    assert response.status_code == 200, response.content
    refresh = token_issue(user=user, token_type="refresh").token
    response = api.post("/users/login/refresh", {"refresh_token": refresh})
    assert response.status_code == 200, response.content


def test_register_and_password_change_answer_with_the_cache_down(make_user, cache_down):
    response = ApiClient().post(
        "/users/register",
        {"phone": "+8801611000009", "password": "Sign-Me-Up-2024",
         "confirm_password": "Sign-Me-Up-2024"},
    )
    assert response.status_code == 201, response.content
    user = make_user()
    response = ApiClient().bearer(user).post(
        "/users/me/password", {"old_password": PASSWORD, "new_password": "A-Fresh-Secret-2025"}
    )
    assert response.status_code == 204, response.content
