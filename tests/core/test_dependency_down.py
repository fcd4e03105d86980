"""A dependency that is down (api-contract.md, Writes and errors): when the cache is
down everything still answers, only slower; when the database is down every route
answers 503 ``{"detail"}`` with ``Retry-After``, never a 500."""

import shutil
from decimal import Decimal

import pytest
from django.test import override_settings

from core import cache as shared_cache
from core.enums import UserKind
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
    answers = {path: client.get(path) for path in LISTS}
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
