"""A dependency that is down (api-contract.md, Writes and errors): when the cache is
down everything still answers, only slower; when the database is down every route
answers 503 ``{"detail"}`` with ``Retry-After``, never a 500."""

import shutil
from decimal import Decimal

import orjson
import pytest
from django.db import OperationalError, connection
from django.test import Client, RequestFactory, override_settings

from accounts.tokens import token_issue
from core import cache as shared_cache
from core.enums import UserKind
from core.middleware import json_handler500
from tests.billing.factories import CustomerFactory, PackageFactory, PaymentFactory
from tests.conftest import ApiClient
from tests.factories import UserFactory
from tests.network.fake_routeros import free_port
from tests.worker.conftest import PrivateRedis

LISTS = ("/users", "/packages", "/customers", "/payments")


def redis_cache(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.fixture
def billing_data(db):
    package = PackageFactory(price=Decimal("500.00"))
    customer = CustomerFactory(package=package)
    PaymentFactory(customer=customer, amount=Decimal("500.00"))
    return ApiClient().bearer(UserFactory(kind=UserKind.ADMIN))


def counts(client) -> dict[str, int]:
    """Each list's count, from pages of one row: a full page is counted (COUNT(*), cached),
    not read off a last page."""
    answers = {path: client.get(path, {"page_size": 1}) for path in LISTS}
    for path, response in answers.items():
        assert response.status_code == 200, (path, response.content)
    return {path: response.json()["count"] for path, response in answers.items()}


def dashboard(client) -> dict:
    response = client.get("/dashboard")
    assert response.status_code == 200, response.content
    return response.json()


# The cache ---------------------------------------------------------------------------


def test_lists_and_dashboard_answer_with_the_cache_down(billing_data):
    client = billing_data
    with override_settings(CACHES=redis_cache(f"redis://127.0.0.1:{free_port()}/0")):
        assert counts(client) == {"/users": 1, "/packages": 1, "/customers": 1, "/payments": 1}
        figures = dashboard(client)
        assert (figures["total_customers"], figures["total_payments"]) == (1, 1)
        assert figures["total_revenue"] == "500.00"
        # still computed, not remembered from before the outage
        CustomerFactory(package=PackageFactory())
        assert counts(client)["/customers"] == 2
        assert dashboard(client)["total_customers"] == 2


def test_shared_cache_calls_are_a_miss_when_the_cache_is_down(db):
    with override_settings(CACHES=redis_cache(f"redis://127.0.0.1:{free_port()}/0")):
        shared_cache.cache_set("k", 1, 60)
        assert shared_cache.cache_get("k") is None
        assert shared_cache.cache_get("k", "default") == "default"
        shared_cache.cache_delete("k")


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("needs the redis-server program (a private Redis the test can stop)")
    server = PrivateRedis(port=free_port(), log=tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def test_a_cache_that_stops_and_comes_back(billing_data, private_redis, monkeypatch):
    client = billing_data
    monkeypatch.setattr(shared_cache, "RETRY_AFTER_SECONDS", 0.0)
    with override_settings(CACHES=redis_cache(private_redis.url)):
        from django.core.cache import cache

        assert counts(client)["/customers"] == 1
        assert dashboard(client)["total_customers"] == 1
        assert any(True for _ in cache._cache.get_client().scan_iter("*count:*"))

        private_redis.stop()
        CustomerFactory(package=PackageFactory())
        assert counts(client)["/customers"] == 2
        assert dashboard(client)["total_customers"] == 2

        private_redis.start()
        assert counts(client)["/customers"] == 2
        assert dashboard(client)["total_customers"] == 2
        assert shared_cache.cache_get("missing", "miss") == "miss"
        shared_cache.cache_set("back", 1, 60)
        assert shared_cache.cache_get("back") == 1


def test_a_failure_leaves_the_cache_alone_for_a_while(db, private_redis):
    """One timeout now and then, not one per call, while the cache is down."""
    with override_settings(CACHES=redis_cache(private_redis.url)):
        shared_cache.cache_set("k", 1, 60)
        assert shared_cache.cache_get("k") == 1
        private_redis.stop()
        assert shared_cache.cache_get("k") is None  # the failure
        private_redis.start()
        assert shared_cache.cache_get("k") is None  # left alone, though it is back


# The database ------------------------------------------------------------------------

DATABASE_DOWN = {"detail": "The database is unavailable; try again shortly."}


@pytest.fixture
def database_down(transactional_db):
    """The connection points at a port where nothing listens, until the test ends."""
    if connection.vendor != "postgresql":
        pytest.skip("needs postgres: the outage is a closed PostgreSQL port")
    original = connection.settings_dict["PORT"]

    def down():
        connection.close()
        connection.settings_dict["PORT"] = str(free_port())

    yield down
    connection.close()
    connection.settings_dict["PORT"] = original


def assert_database_down(response):
    assert response.status_code == 503, response.content
    assert response.json() == DATABASE_DOWN
    assert int(response["Retry-After"]) > 0


@pytest.mark.postgres
def test_every_kind_of_route_answers_503_with_the_database_down(database_down):
    admin = UserFactory(kind=UserKind.ADMIN)
    package = PackageFactory()
    bearer = ApiClient().bearer(admin)
    basic = ApiClient().basic(admin.phone)
    anonymous = ApiClient()
    refresh = token_issue(user=admin, token_type="refresh").token
    database_down()

    for response in (
        bearer.get("/users"),
        bearer.get("/users/"),
        bearer.get("/dashboard"),
        bearer.get(f"/customers/{package.uid}"),
        bearer.post("/payments", {"customer_id": 1, "amount": "1"}),
        basic.get("/users/me"),
        anonymous.get("/packages"),
        anonymous.get(f"/packages/{package.uid}"),
        anonymous.post("/users/login", {"phone": admin.phone, "password": "x"}),
        anonymous.post("/users/login/refresh", {"refresh_token": refresh}),
    ):
        assert_database_down(response)


@pytest.mark.postgres
def test_pages_outside_the_api_answer_503_with_the_database_down(database_down):
    admin = UserFactory(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    database_down()

    response = browser.get("/admin/")

    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0


@pytest.mark.postgres
def test_health_reports_the_database_down(database_down):
    database_down()

    response = ApiClient().get("/health")

    assert response.status_code == 503, response.content
    assert response.json()["database"] == "unavailable"


@pytest.mark.postgres
def test_the_database_coming_back_is_answered_again(database_down):
    admin = UserFactory(kind=UserKind.ADMIN)
    client = ApiClient().bearer(admin)
    original = connection.settings_dict["PORT"]
    database_down()
    assert_database_down(client.get("/users"))

    connection.close()
    connection.settings_dict["PORT"] = original
    response = client.get("/users")
    assert response.status_code == 200, response.content


def test_a_database_error_outside_any_view_is_503_too():
    """Django's last resort (handler500) for what middleware meets after the view."""
    request = RequestFactory().get("/admin/")
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        response = json_handler500(request)

    assert response.status_code == 503
    assert orjson.loads(response.content) == DATABASE_DOWN
    assert int(response["Retry-After"]) > 0
