"""``GET /health`` (api-contract.md, Meta): public, 200 when the dependencies answer, else 503."""

import pytest
from django.db import connection
from django.test import override_settings

from tasks import app as celery_app

HEALTH_KEYS = {"status", "database", "broker", "workers", "routers"}
UNUSED_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def real_broker():
    """Tasks go through the broker (not in-process), as in production."""
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        yield


@pytest.fixture
def broker_down(real_broker):
    """The broker URL points at a port where nothing listens."""
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = UNUSED_BROKER
    try:
        yield
    finally:
        celery_app.conf.broker_url = original


@pytest.mark.django_db
def test_health_is_public_and_ok_with_tasks_in_process(api):
    response = api.get("/health")

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "in-process",
        "workers": "in-process",
        "routers": {"enabled": 0, "failing": 0},
    }


@pytest.mark.django_db
def test_health_ignores_bad_credentials(api):
    response = api.get("/health", HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 200, response.content
    assert set(response.json()) == HEALTH_KEYS


@pytest.mark.redis
@pytest.mark.django_db
def test_health_with_a_real_broker(api, real_broker):
    response = api.get("/health")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == HEALTH_KEYS
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert isinstance(body["workers"], int) and body["workers"] >= 0


@pytest.mark.django_db
def test_health_is_503_when_the_broker_is_down(api, broker_down):
    response = api.get("/health")

    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "broker": "unavailable",
        "workers": 0,
        "routers": {"enabled": 0, "failing": 0},
    }


@pytest.mark.django_db
def test_health_recovers_when_the_broker_is_back(api, real_broker):
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = UNUSED_BROKER
    try:
        assert api.get("/health").status_code == 503
    finally:
        celery_app.conf.broker_url = original
    if original.startswith("memory://"):
        pytest.skip("needs a real broker to come back")
    assert api.get("/health").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_health_is_503_when_the_database_is_down(api):
    """The database really is unreachable: the connection points at a closed port."""
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = api.get("/health")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port

    assert response.status_code == 503, response.content
    body = response.json()
    assert set(body) == HEALTH_KEYS
    assert body["status"] == "unavailable"
    assert body["database"] == "unavailable"
    assert body["broker"] == "in-process"
    with connection.cursor() as cursor:  # and the connection is usable again
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_a_failing_router_is_shown_and_the_service_stays_up(api):
    from billing.models import Router

    Router.objects.create(name="ok", host="10.0.0.1", username="u", password="p",
                          last_sync_status="SUCCESS")
    Router.objects.create(name="bad", host="10.0.0.2", username="u", password="p",
                          last_sync_status="FAILED", consecutive_failures=4)
    Router.objects.create(name="off", host="10.0.0.3", username="u", password="p",
                          last_sync_status="FAILED", is_enabled=False)

    response = api.get("/health")

    assert response.status_code == 200, response.content
    assert response.json()["routers"] == {"enabled": 2, "failing": 1}
