"""Every failed credential check costs one password hash, whoever the login names
(issue 8, item 11: a REMOVED or INACTIVE account answered 50x faster than an active one)."""

import pytest
from django.test import override_settings

from accounts.models import User
from core.enums import Status
from tests.accounts.hashers import CountingHasher
from tests.conftest import ApiClient
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

COUNTING = ["tests.accounts.hashers.CountingHasher"]


@pytest.fixture
def hashes():
    """``hashes()``: how many hashes were computed since the last call."""
    with override_settings(PASSWORD_HASHERS=COUNTING):
        mark = [CountingHasher.calls]

        def take() -> int:
            done, mark[0] = CountingHasher.calls - mark[0], CountingHasher.calls
            return done

        yield take


CASES = ["unknown login", "wrong password", "INACTIVE", "REMOVED", "DRAFT", "no password"]


def _login_for(case, make_user):
    if case == "unknown login":
        return "+8801999999999", PASSWORD
    if case == "wrong password":
        return make_user().phone, "not-the-password"
    if case == "no password":
        user = make_user()
        user.set_unusable_password()
        user.save()
        return user.phone, PASSWORD
    return make_user(status=getattr(Status, case)).phone, PASSWORD


@pytest.mark.parametrize("case", CASES)
def test_a_failed_login_costs_one_hash(api, make_user, hashes, case):
    login, password = _login_for(case, make_user)
    assert User.objects.count() <= 1
    hashes()

    response = api.post("/users/login", {"phone": login, "password": password})

    assert response.status_code == 401, response.content
    assert hashes() == 1


@pytest.mark.parametrize("case", CASES)
def test_a_failed_basic_check_costs_one_hash(make_user, hashes, case):
    login, password = _login_for(case, make_user)
    hashes()

    response = ApiClient().basic(login, password).get("/users/me")

    assert response.status_code == 401, response.content
    assert hashes() == 1


def test_a_good_login_costs_one_hash_too(api, make_user, hashes):
    user = make_user()
    hashes()
    assert api.post("/users/login", {"phone": user.phone, "password": PASSWORD}).status_code == 200
    assert hashes() == 1
