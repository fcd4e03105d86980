"""A connection change end to end: the API, the ConnectionChange record, the Celery task
(eager in tests) and the MikroTik backend against the fake router."""

import pytest
from django_celery_results.models import TaskResult

from billing.connections import connection_change_apply_now
from billing.models import ConnectionChange, Customer
from core.enums import UserKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client_as, mikrotik_settings):
    client, _user = client_as(UserKind.ADMIN)
    return client


@pytest.fixture
def customer(admin, router):
    """A PPPoE customer created through the API, with a secret and a live session."""
    package = admin.post("/packages", {"name": "Home 20", "speed_mbps": 20, "price": "500.00"})
    assert package.status_code == 201, package.content
    created = admin.post(
        "/customers",
        {
            "name": "Alice",
            "phone": "01700000001",
            "package_id": package.json()["id"],
            "connection_type": "PPPoE",
            "username": "alice",
            "password": "pppoe-pass",
        },
    )
    assert created.status_code == 201, created.content
    router.add_secret("alice")
    router.add_session("alice")
    return Customer.objects.get(pk=created.json()["id"])


def toggle(client, captured, username, is_active):
    with captured(execute=True) as callbacks:
        response = client.post(
            "/customers/status/toggle", {"username": username, "is_active": is_active}
        )
    return response, callbacks


def test_toggle_off_switches_the_connection_off_on_the_router(
    admin, customer, router, django_capture_on_commit_callbacks
):
    assert ConnectionChange.objects.count() == 0  # creating an active customer sends nothing

    response, callbacks = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"message", "task_id"}
    assert body["task_id"]
    assert len(callbacks) == 1

    customer.refresh_from_db()
    assert customer.is_active is False
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []

    change = ConnectionChange.objects.get(customer=customer)
    assert change.task_id == body["task_id"]
    assert change.enable is False
    assert change.reason == ConnectionChange.Reason.TOGGLE
    assert change.confirmed_at is not None
    assert change.attempts == 1
    assert change.last_error == ""
    assert change.superseded is False
    assert customer.network_confirmed_at == change.confirmed_at
    assert customer.network_confirmed_active is False
    assert customer.network_last_error == ""
    # The task id the API answered names the task that ran.
    assert TaskResult.objects.get(task_id=body["task_id"]).status == "SUCCESS"


def test_toggle_on_switches_the_connection_on(
    admin, customer, router, django_capture_on_commit_callbacks
):
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    assert router.secret("alice")["disabled"] == "true"

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.is_active is True
    assert router.secret("alice")["disabled"] == "false"
    latest = ConnectionChange.objects.filter(customer=customer).first()
    assert latest.enable is True and latest.confirmed_at is not None
    assert customer.network_confirmed_active is True
    assert ConnectionChange.objects.filter(confirmed_at__isnull=False).count() == 2


def test_toggle_to_the_same_state_still_tells_the_router(
    admin, customer, router, django_capture_on_commit_callbacks
):
    """The database says active, the router disagrees: the toggle puts the router right."""
    router.secrets[router.secret("alice")[".id"]]["disabled"] = "true"

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    assert router.secret("alice")["disabled"] == "false"
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True


def test_unknown_username_is_not_found(admin, customer, router, django_capture_on_commit_callbacks):
    response, callbacks = toggle(admin, django_capture_on_commit_callbacks, "nobody", False)

    assert response.status_code == 404
    assert callbacks == []
    assert ConnectionChange.objects.count() == 0
    assert router.calls() == []


def test_router_failing_leaves_the_change_unconfirmed_until_applied_again(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.fail_next(1, status=503)

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    # The request is accepted and the database changed at once...
    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.is_active is False
    # ...but the router did not confirm: the error is kept, nothing is confirmed.
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert change.superseded is False
    assert change.attempts == 1
    assert "503" in change.last_error
    assert customer.network_last_error == change.last_error
    assert customer.network_confirmed_at is None
    assert customer.network_confirmed_active is None
    assert router.secret("alice")["disabled"] == "false"
    assert len(router.sessions_of("alice")) == 1
    assert len(router.calls()) == 1  # eager mode does not retry in the request
    assert TaskResult.objects.get(task_id=change.task_id).result == "false"

    # The router recovers; the change is carried out again.
    assert connection_change_apply_now(change_id=change.pk) is True

    change.refresh_from_db()
    customer.refresh_from_db()
    assert change.confirmed_at is not None
    assert change.attempts == 2
    assert change.last_error == ""
    assert customer.network_confirmed_at == change.confirmed_at
    assert customer.network_confirmed_active is False
    assert customer.network_last_error == ""
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []

    # A confirmed change is not carried out again.
    calls = len(router.calls())
    assert connection_change_apply_now(change_id=change.pk) is True
    assert len(router.calls()) == calls


def test_apply_now_raises_and_records_when_the_router_still_fails(admin, customer, router):
    from billing.connections import connection_change_request
    from billing.network import NetworkError

    change = connection_change_request(
        customer=customer, enable=False, reason=ConnectionChange.Reason.TOGGLE, requested_by=None
    )
    router.fail_next(1, status=500)

    with pytest.raises(NetworkError, match="500"):
        connection_change_apply_now(change_id=change.pk)

    change.refresh_from_db()
    customer.refresh_from_db()
    assert change.confirmed_at is None and "500" in change.last_error
    assert customer.network_last_error == change.last_error


def test_wrong_router_password_is_recorded(
    admin, customer, router, settings, django_capture_on_commit_callbacks
):
    settings.MIKROTIK_PASSWORD = "not-the-password"

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "401" in change.last_error
    assert router.secret("alice")["disabled"] == "false"


def test_router_slower_than_the_timeout_is_recorded(
    admin, customer, router, settings, django_capture_on_commit_callbacks
):
    settings.MIKROTIK_TIMEOUT_SECONDS = 0.2
    router.delay = 2.0

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    assert response.status_code == 200
    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "unreachable" in change.last_error or "timed out" in change.last_error.lower()
    assert Customer.objects.get(pk=customer.pk).network_last_error == change.last_error

    router.delay = 0
    assert connection_change_apply_now(change_id=change.pk) is True
    assert router.secret("alice")["disabled"] == "true"


def test_missing_secret_on_the_router_is_recorded(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.secrets.clear()

    toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    change = ConnectionChange.objects.get(customer=customer)
    assert change.confirmed_at is None
    assert "alice" in change.last_error


def test_a_second_change_supersedes_an_older_unconfirmed_one(
    admin, customer, router, django_capture_on_commit_callbacks
):
    router.fail_next(1, status=503)
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    older = ConnectionChange.objects.get(customer=customer)
    assert older.confirmed_at is None

    response, _ = toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    assert response.status_code == 200
    older.refresh_from_db()
    newer = ConnectionChange.objects.exclude(pk=older.pk).get(customer=customer)
    assert older.superseded is True
    assert older.confirmed_at is None
    assert newer.superseded is False
    assert newer.enable is True
    assert newer.confirmed_at is not None
    assert router.secret("alice")["disabled"] == "false"

    # The older change, retried late, must not switch the customer off again.
    calls = len(router.calls())
    assert connection_change_apply_now(change_id=older.pk) is True
    assert len(router.calls()) == calls
    assert router.secret("alice")["disabled"] == "false"
    customer.refresh_from_db()
    assert customer.is_active is True
    assert customer.network_confirmed_active is True
    older.refresh_from_db()
    assert older.attempts == 1


def test_a_new_change_leaves_confirmed_ones_alone(
    admin, customer, router, django_capture_on_commit_callbacks
):
    toggle(admin, django_capture_on_commit_callbacks, "alice", False)
    first = ConnectionChange.objects.get(customer=customer)
    assert first.confirmed_at is not None

    toggle(admin, django_capture_on_commit_callbacks, "alice", True)

    first.refresh_from_db()
    assert first.superseded is False
    assert ConnectionChange.objects.filter(customer=customer, superseded=True).count() == 0


def test_changes_of_other_customers_are_not_superseded(
    admin, customer, router, django_capture_on_commit_callbacks
):
    other = admin.post(
        "/customers",
        {
            "name": "Bob",
            "package_id": customer.package_id,
            "connection_type": "PPPoE",
            "username": "bob",
            "password": "pppoe-pass",
        },
    )
    assert other.status_code == 201, other.content
    router.add_secret("bob")
    router.fail_next(1, status=503)
    toggle(admin, django_capture_on_commit_callbacks, "bob", False)
    bobs = ConnectionChange.objects.get(customer_id=other.json()["id"])
    assert bobs.confirmed_at is None

    toggle(admin, django_capture_on_commit_callbacks, "alice", False)

    bobs.refresh_from_db()
    assert bobs.superseded is False
    assert connection_change_apply_now(change_id=bobs.pk) is True
    assert router.secret("bob")["disabled"] == "true"
    assert router.secret("alice")["disabled"] == "true"
