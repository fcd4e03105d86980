"""Routers in the back office: added with a password that is never shown back, kept
when left blank, synced and imported by actions; runs and actions read-only."""

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import Router, RouterAction, RouterRun
from core.enums import UserKind
from tests.factories import UserFactory
from tests.network.fake_routeros import FakeRouterOS
from tests.network.routers import pppoe_customer, router_record

pytestmark = pytest.mark.django_db

FORM = {"name": "edge-1", "kind": "ROUTEROS_REST", "host": "10.0.0.1", "port": "",
        "use_tls": "on", "verify_tls": "on", "username": "api", "password": "typed-secret",
        "is_enabled": "on", "calls_per_second": "20", "timeout_seconds": "5",
        "status": "ACTIVE"}


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def fake():
    server = FakeRouterOS().start()
    yield server
    server.stop()


def test_add_a_router_and_its_password_is_never_shown(operator):
    response = operator.post(reverse("admin:billing_router_add"), FORM, follow=True)
    assert response.status_code == 200
    router = Router.objects.get(name="edge-1")
    assert router.password == "typed-secret"
    page = operator.get(reverse("admin:billing_router_change", args=[router.pk]))
    assert page.status_code == 200
    assert b"typed-secret" not in page.content


def test_a_change_with_the_password_left_blank_keeps_it(operator):
    operator.post(reverse("admin:billing_router_add"), FORM)
    router = Router.objects.get(name="edge-1")
    response = operator.post(reverse("admin:billing_router_change", args=[router.pk]),
                             {**FORM, "password": "", "timeout_seconds": "7"})
    assert response.status_code == 302, response.content[:2000]
    router.refresh_from_db()
    assert (router.password, router.timeout_seconds) == ("typed-secret", 7)


def test_a_new_router_needs_a_password(operator):
    response = operator.post(reverse("admin:billing_router_add"), {**FORM, "password": ""})
    assert response.status_code == 200
    assert not Router.objects.exists()


def test_sync_and_import_actions_run_and_their_outcome_is_shown(
    operator, fake, django_capture_on_commit_callbacks
):
    router = router_record(fake)
    pppoe_customer(router, "alice", active=False)
    fake.add_secret("alice", profile="20M")
    fake.add_secret("stranger", profile="20M")
    url = reverse("admin:billing_router_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(url, {"action": "sync_now", "_selected_action": [router.pk]},
                                 follow=True)
    assert response.status_code == 200
    assert fake.secret("alice")["disabled"] == "true"
    assert RouterAction.objects.filter(action="DISABLE", outcome="OK").count() == 1
    page = operator.get(reverse("admin:billing_router_change", args=[router.pk]))
    assert b"stranger" in page.content  # the drift: a secret that matches no customer
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(url, {"action": "import_dry_run", "_selected_action": [router.pk]})
    run = RouterRun.objects.get(kind="IMPORT")
    assert (run.state, run.dry_run, run.result["would_create"]) == ("SUCCESS", True, 1)


def test_runs_and_actions_are_read_only(operator, fake, django_capture_on_commit_callbacks):
    router = router_record(fake)
    pppoe_customer(router, "alice", active=False)
    fake.add_secret("alice", profile="20M")
    url = reverse("admin:billing_router_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(url, {"action": "sync_now", "_selected_action": [router.pk]})
    action = RouterAction.objects.get()
    run = RouterRun.objects.get()
    for name, pk in (("routeraction", action.pk), ("routerrun", run.pk)):
        assert operator.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
        assert operator.get(reverse(f"admin:billing_{name}_change", args=[pk])).status_code == 200
        assert operator.get(reverse(f"admin:billing_{name}_delete", args=[pk])).status_code == 403
        assert operator.post(reverse(f"admin:billing_{name}_change", args=[pk]),
                             {}).status_code == 403


def test_the_changelist_lists_routers(operator):
    Router.objects.create(name="edge-7", host="10.7.0.1", username="api",
                          password="hidden-pass", drift_count=3)
    page = operator.get(reverse("admin:billing_router_changelist"))
    assert page.status_code == 200
    assert b"edge-7" in page.content and b"hidden-pass" not in page.content
    assert operator.get(reverse("admin:billing_router_changelist"),
                        {"q": "10.7"}).context["cl"].result_count == 1


def test_a_duplicate_name_is_a_form_error(operator):
    operator.post(reverse("admin:billing_router_add"), FORM)
    response = operator.post(reverse("admin:billing_router_add"), {**FORM, "name": "EDGE-1"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Router.objects.count() == 1


def test_removing_a_router_with_customers_is_refused(operator):
    operator.post(reverse("admin:billing_router_add"), FORM)
    router = Router.objects.get()
    customer = pppoe_customer(router, "alice")
    url = reverse("admin:billing_router_change", args=[router.pk])
    response = operator.post(url, {**FORM, "password": "", "status": "REMOVED"})
    assert response.status_code == 200
    assert "status" in response.context["adminform"].form.errors
    router.refresh_from_db()
    assert router.status == "ACTIVE"
    customer.status = "REMOVED"
    customer.save()
    assert operator.post(url, {**FORM, "password": "", "status": "REMOVED"}).status_code == 302
    router.refresh_from_db()
    assert router.status == "REMOVED"


def test_the_change_page_shows_only_the_last_runs(operator):
    router = Router.objects.create(name="edge-1", host="10.0.0.1", username="api",
                                   password="typed-secret")
    for n in range(12):
        RouterRun.objects.create(router=router, kind="SYNC", state="SUCCESS", task_id=f"t-{n}",
                                 trigger=f"TRIGGER-{n:02d}", result={"checked": n})
    page = operator.get(reverse("admin:billing_router_change", args=[router.pk]))
    assert page.status_code == 200
    shown = [n for n in range(12) if f"TRIGGER-{n:02d}".encode() in page.content]
    assert shown == list(range(2, 12))
    assert b"typed-secret" not in page.content


def test_import_confirm_and_a_switched_off_router(operator, django_capture_on_commit_callbacks):
    on = Router.objects.create(name="on", host="10.0.0.1", username="api", password="pw")
    off = Router.objects.create(name="off", host="10.0.0.2", username="api", password="pw",
                                is_enabled=False)
    url = reverse("admin:billing_router_changelist")
    with django_capture_on_commit_callbacks(execute=False):
        response = operator.post(url, {"action": "import_confirmed",
                                       "_selected_action": [on.pk, off.pk]}, follow=True)
    run = RouterRun.objects.get()
    assert (run.router, run.kind, run.dry_run, run.trigger) == (on, "IMPORT", False, "ADMIN")
    messages = [str(message) for message in response.context["messages"]]
    assert any(run.task_id in message for message in messages)
    assert any("off: switched off" in message for message in messages)
