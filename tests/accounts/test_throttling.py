"""Throttles on credentials and public sign-up: 429 ``{"detail"}`` with ``Retry-After``
(api-contract.md, Writes and errors; issue 8, item 10)."""

import time

import pytest
from django.test import override_settings

from accounts.tokens import token_issue
from tests.accounts.hashers import CountingHasher
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "not-the-password"
PER_LOGIN, PER_ADDRESS = 5, 20  # the defaults: failures a minute


@pytest.fixture(autouse=True)
def window_start(monkeypatch):
    """Each test starts 1 s into a throttle window (a minute, and 47 minutes into an
    hour), so that no window ends under a test; the clock still runs."""
    real = time.time
    started = real()
    monkeypatch.setattr(time, "time", lambda: 1_000_021.0 + (real() - started))


def login(login_name, password=PASSWORD, address="10.0.0.1", **extra):
    return ApiClient().post(
        "/users/login", {"phone": login_name, "password": password}, REMOTE_ADDR=address, **extra
    )


def basic(login_name, password=PASSWORD, address="10.0.0.1"):
    return ApiClient().basic(login_name, password).get("/users/me", REMOTE_ADDR=address)


def assert_throttled(response):
    assert response.status_code == 429, response.content
    assert set(response.json()) == {"detail"}
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_defaults():
    from django.conf import settings

    assert settings.THROTTLE_RATES == {
        "credentials_per_login": "5/min",
        "credentials_per_address": "20/min",
        "login": "30/min",
        "refresh": "60/min",
        "register": "10/hour",
    }
    assert settings.THROTTLE_BEHIND_PROXY is False


def test_failed_logins_per_login_are_throttled_before_the_hash(make_user):
    user = make_user()
    for _ in range(PER_LOGIN):
        assert login(user.phone, WRONG).status_code == 401
    with override_settings(PASSWORD_HASHERS=["tests.accounts.hashers.CountingHasher"]):
        before = CountingHasher.calls
        assert_throttled(login(user.phone, WRONG))
        # the right password too, and from another address: the login is what is guessed
        assert_throttled(login(user.phone, PASSWORD, address="10.0.0.9"))
        assert_throttled(basic(user.phone, WRONG, address="10.0.0.8"))
        assert CountingHasher.calls == before
    # the same address may still try other logins
    assert login(make_user().phone).status_code == 200


def test_failed_logins_by_email_in_another_case_count_for_the_same_login(make_user):
    user = make_user(email="case@example.com")
    for sent in ("case@example.com", "CASE@example.com", "Case@Example.com", " case@EXAMPLE.com",
                 "case@example.COM"):
        assert login(sent, WRONG).status_code == 401
    assert_throttled(login("case@example.com"))
    assert login(user.phone).status_code == 200  # another login of the same user


def test_failed_credentials_per_address_are_throttled(make_user):
    users = [make_user() for _ in range(PER_ADDRESS)]
    for user in users:
        assert login(user.phone, WRONG).status_code == 401
    fresh = make_user()
    assert_throttled(login(fresh.phone))
    assert_throttled(basic(fresh.phone))
    assert login(fresh.phone, address="10.0.0.2").status_code == 200


def test_failed_basic_credentials_are_throttled(make_user):
    user = make_user()
    for _ in range(PER_LOGIN):
        assert basic(user.phone, WRONG).status_code == 401
    assert_throttled(basic(user.phone, WRONG))
    assert_throttled(basic(user.phone))
    assert_throttled(login(user.phone))


def test_a_remembered_basic_verdict_still_answers_while_its_login_is_throttled(make_user):
    user = make_user()
    assert basic(user.phone).status_code == 200
    for _ in range(PER_LOGIN):
        assert basic(user.phone, WRONG, address="10.6.6.6").status_code == 401
    assert basic(user.phone).status_code == 200
    assert_throttled(basic(user.phone, "another-guess"))


def test_the_throttle_ends_with_its_window(make_user, monkeypatch):
    user = make_user()
    now = [1_000_040.0]  # 20 s into a minute
    monkeypatch.setattr(time, "time", lambda: now[0])
    for _ in range(PER_LOGIN):
        assert login(user.phone, WRONG).status_code == 401
    response = login(user.phone)
    assert_throttled(response)
    assert int(response["Retry-After"]) == 40
    now[0] += 40
    assert login(user.phone).status_code == 200


def test_x_forwarded_for_is_ignored_unless_behind_a_proxy(make_user):
    users = [make_user() for _ in range(PER_ADDRESS)]
    for number, user in enumerate(users):
        response = login(user.phone, WRONG, HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")
        assert response.status_code == 401
    assert_throttled(login(make_user().phone, HTTP_X_FORWARDED_FOR="192.0.2.200"))


@override_settings(THROTTLE_BEHIND_PROXY=True)
def test_behind_a_proxy_the_first_forwarded_hop_is_the_client(make_user):
    users = [make_user() for _ in range(PER_ADDRESS)]
    for user in users:
        forwarded = "198.51.100.7, 10.0.0.1"
        assert login(user.phone, WRONG, HTTP_X_FORWARDED_FOR=forwarded).status_code == 401
    fresh = make_user()
    assert_throttled(login(fresh.phone, HTTP_X_FORWARDED_FOR="198.51.100.7"))
    assert login(fresh.phone, HTTP_X_FORWARDED_FOR="198.51.100.8, 10.0.0.1").status_code == 200


def test_login_requests_per_address_are_limited(make_user, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": "3/min"}
    user = make_user()
    for _ in range(3):
        assert login(user.phone).status_code == 200
    assert_throttled(login(user.phone))
    assert login(user.phone, address="10.0.0.2").status_code == 200


def test_refresh_per_address_is_limited(make_user, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "refresh": "2/min"}
    refresh = token_issue(user=make_user(), token_type="refresh").token
    api = ApiClient()
    for _ in range(2):
        response = api.post("/users/login/refresh", {"refresh_token": refresh})
        assert response.status_code == 200, response.content
    assert_throttled(api.post("/users/login/refresh", {"refresh_token": refresh}))


def _registration(number: int) -> dict:
    return {
        "phone": f"+88016110{number:05d}",
        "password": "Sign-Me-Up-2024",
        "confirm_password": "Sign-Me-Up-2024",
    }


def test_registrations_per_address_are_limited_to_ten_an_hour(db):
    api = ApiClient()
    for number in range(10):
        response = api.post("/users/register", _registration(number))
        assert response.status_code == 201, response.content
    response = api.post("/users/register", _registration(10))
    assert_throttled(response)
    assert int(response["Retry-After"]) > 60
    other = api.post("/users/register", _registration(11), REMOTE_ADDR="10.0.0.2")
    assert other.status_code == 201, other.content


def test_an_address_that_failed_gets_one_check_at_a_time(make_user):
    from core.throttling import credentials_check

    user = make_user()
    with credentials_check(address="10.0.0.1", login="someone-else"):
        assert login(user.phone).status_code == 200  # no failure yet: side by side
    assert login(user.phone, WRONG).status_code == 401
    with credentials_check(address="10.0.0.1", login="someone-else"):  # a check running
        response = login(user.phone)
        assert_throttled(response)
        assert response["Retry-After"] == "1"
        assert_throttled(basic(user.phone))
        assert login(user.phone, address="10.0.0.2").status_code == 200
    assert login(user.phone).status_code == 200  # and the slot is free again


def test_a_flooding_address_is_refused_before_its_login_is_read(
    make_user, django_assert_num_queries
):
    """An address over its failures is refused by core.middleware.LoginFloodMiddleware,
    before sessions, the audit trail and the body: a body that would be 400 is 429, and
    nothing reaches the database."""
    for n in range(PER_ADDRESS):
        assert login(f"0170000{n:04d}", WRONG).status_code == 401
    with django_assert_num_queries(0):
        assert_throttled(ApiClient().post("/users/login", "{not json", REMOTE_ADDR="10.0.0.1"))
        assert_throttled(ApiClient().post("/users/login/", {"phone": 1}, REMOTE_ADDR="10.0.0.1"))
    assert login(make_user().phone, address="10.0.0.2").status_code == 200  # others go on
