"""Routers (api-contract.md, Routers): SUPER_ADMIN and ADMIN only, the password
write-only and encrypted at rest, soft delete refused while customers are on it, sync
and import handed to the queue, one live run per router and kind."""

import pytest
from django.db import connection

from billing.models import Customer, Router, RouterRun
from core.enums import Status, UserKind
from tests.network.routers import package, pppoe_customer

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-router-pass"
BODY = {"name": "core-1", "kind": "ROUTEROS_REST", "host": "10.0.0.1", "port": 443,
        "username": "billing", "password": PASSWORD}
DETAIL_KEYS = {
    "id", "uid", "name", "kind", "host", "port", "use_tls", "verify_tls", "username",
    "is_enabled", "calls_per_second", "timeout_seconds", "last_sync_at", "last_sync_status",
    "last_error", "drift_count", "customer_count", "created_at", "updated_at",
}


@pytest.fixture
def admin(client_as):
    return client_as(UserKind.ADMIN)[0]


def create(client, **fields):
    response = client.post("/routers", {**BODY, **fields})
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_the_detail_without_the_password(admin):
    response = admin.post("/routers", BODY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == DETAIL_KEYS
    assert (body["name"], body["port"], body["verify_tls"], body["calls_per_second"],
            body["customer_count"], body["last_sync_at"]) == ("core-1", 443, True, 20, 0, None)
    assert PASSWORD.encode() not in response.content


def test_the_password_is_stored_encrypted(admin):
    create(admin)
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM billing_router")
        (stored,) = cursor.fetchone()
    assert PASSWORD not in stored
    assert Router.objects.get().password == PASSWORD


def test_no_answer_ever_holds_the_password(admin):
    router = create(admin)
    for response in (admin.get("/routers"), admin.get(f"/routers/{router['uid']}"),
                     admin.put(f"/routers/{router['uid']}", {**BODY, "host": "10.0.0.2"}),
                     admin.get(f"/routers/{router['uid']}/drift")):
        assert response.status_code == 200, response.content
        assert PASSWORD.encode() not in response.content


def test_a_put_without_the_password_keeps_it(admin):
    router = create(admin)
    body = {key: value for key, value in BODY.items() if key != "password"}
    response = admin.put(f"/routers/{router['uid']}", {**body, "timeout_seconds": 9})
    assert response.status_code == 200, response.content
    assert response.json()["timeout_seconds"] == 9
    assert Router.objects.get().password == PASSWORD
    admin.put(f"/routers/{router['uid']}", {**BODY, "password": "new-pass"})
    assert Router.objects.get().password == "new-pass"


def test_the_password_is_required_on_create(admin):
    body = {key: value for key, value in BODY.items() if key != "password"}
    response = admin.post("/routers", body)
    assert response.status_code == 400
    assert "password" in response.json()


@pytest.mark.parametrize(("field", "value"), [
    ("name", ""), ("name", "   "), ("kind", "CISCO"), ("host", ""), ("host", "not a host!"),
    ("port", 0), ("port", 70000), ("port", True), ("port", "abc"), ("calls_per_second", 0),
    ("calls_per_second", True), ("timeout_seconds", -1), ("timeout_seconds", 500),
    ("username", ""), ("use_tls", "maybe"),
])
def test_bad_input_is_400_on_its_field(admin, field, value):
    response = admin.post("/routers", {**BODY, field: value})
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Router.objects.exists()


def test_a_name_is_unique_among_live_routers_whatever_its_case(admin):
    first = create(admin)
    response = admin.post("/routers", {**BODY, "name": "CORE-1"})
    assert response.status_code == 400
    assert "name" in response.json()
    assert admin.delete(f"/routers/{first['uid']}").status_code == 204
    assert admin.post("/routers", {**BODY, "name": "CORE-1"}).status_code == 201


def test_delete_is_soft_and_refused_while_customers_are_on_it(admin):
    router = create(admin)
    customer = pppoe_customer(Router.objects.get(), "alice")
    response = admin.delete(f"/routers/{router['uid']}")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    Customer.objects.filter(pk=customer.pk).update(status=Status.REMOVED)
    assert admin.delete(f"/routers/{router['uid']}").status_code == 204
    assert Router.objects.get().status == Status.REMOVED
    assert admin.get(f"/routers/{router['uid']}").status_code == 404


def test_customer_count_and_a_fixed_number_of_queries(admin, django_assert_max_num_queries):
    for n in range(3):
        create(admin, name=f"r{n}")
    router = Router.objects.get(name="r0")
    pppoe_customer(router, "a")
    pppoe_customer(router, "b")
    body = admin.get("/routers?ordering=name").json()
    assert [row["customer_count"] for row in body["results"]] == [2, 0, 0]
    admin.get("/routers?page_size=1")  # a full page: its count is cached
    with django_assert_max_num_queries(3):  # the user, the count's key, the page
        admin.get("/routers?page_size=1")
    with django_assert_max_num_queries(3):  # a last page read whole: no count
        admin.get("/routers?page_size=50")


@pytest.mark.parametrize("kind", [UserKind.MANAGER, UserKind.STAFF, UserKind.OTHER])
def test_other_roles_are_forbidden(client_as, kind, admin):
    router = create(admin)
    client, _ = client_as(kind)
    assert client.get("/routers").status_code == 403
    assert client.post("/routers", BODY).status_code == 403
    assert client.post(f"/routers/{router['uid']}/sync").status_code == 403


def test_a_customer_is_not_told_routers_exist(client_as, admin):
    router = create(admin)
    client, _ = client_as(UserKind.CUSTOMER)
    assert client.get("/routers").status_code == 404
    assert client.get(f"/routers/{router['uid']}").status_code == 404


def test_super_admin_may(client_as):
    client, _ = client_as(UserKind.SUPER_ADMIN)
    assert client.post("/routers", BODY).status_code == 201


def test_sync_and_import_are_accepted_once_per_router_and_kind(
    admin, django_capture_on_commit_callbacks
):
    router = create(admin)
    with django_capture_on_commit_callbacks(execute=False):
        first = admin.post(f"/routers/{router['uid']}/sync")
        second = admin.post(f"/routers/{router['uid']}/sync")
        imported = admin.post(f"/routers/{router['uid']}/import", {"dry_run": True})
    assert first.status_code == second.status_code == imported.status_code == 202
    assert first.json()["task_id"] == second.json()["task_id"]
    assert imported.json()["task_id"] != first.json()["task_id"]
    run = RouterRun.objects.get(task_id=imported.json()["task_id"])
    assert (run.kind, run.dry_run) == (RouterRun.Kind.IMPORT, True)

    status = admin.get(f"/tasks/{first.json()['task_id']}")
    assert status.status_code == 200
    assert status.json()["status"] == "PENDING"
    assert status.json()["result"]["kind"] == "SYNC"


def test_a_switched_off_router_does_not_sync(admin):
    router = create(admin, is_enabled=False)
    response = admin.post(f"/routers/{router['uid']}/sync")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_import_takes_a_boolean(admin):
    router = create(admin)
    response = admin.post(f"/routers/{router['uid']}/import", {"dry_run": "perhaps"})
    assert response.status_code == 400


def test_customers_carry_their_router(admin):
    created = create(admin)
    home = package()
    body = {"name": "Alice", "package_id": home.pk, "connection_type": "PPPoE",
            "username": "alice", "password": "pw", "router_id": created["id"]}
    response = admin.post("/customers", body)
    assert response.status_code == 201, response.content
    assert response.json()["router"] == {"id": created["id"], "uid": created["uid"],
                                         "name": "core-1"}
    listed = admin.get("/customers").json()["results"][0]
    assert listed["router"]["id"] == created["id"]
    # An edit that leaves router_id out keeps it.
    without = {key: value for key, value in body.items() if key != "router_id"}
    kept = admin.put(f"/customers/{response.json()['uid']}", {**without, "name": "Alicia"})
    assert kept.json()["router"]["id"] == created["id"]
    assert admin.put(f"/customers/{response.json()['uid']}",
                     {**body, "router_id": None}).json()["router"] is None


@pytest.mark.parametrize("router_id", [999999, True, "x"])
def test_a_customers_router_must_exist(admin, router_id):
    body = {"name": "Alice", "package_id": package().pk, "router_id": router_id}
    response = admin.post("/customers", body)
    assert response.status_code == 400
    assert "router_id" in response.json()


def test_a_package_or_router_change_is_carried_to_the_router(
    admin, django_capture_on_commit_callbacks
):
    from billing.models import ConnectionChange

    created = create(admin)
    home, fast = package(), package(name="Fast 50", profile="50M")
    body = {"name": "Alice", "package_id": home.pk, "connection_type": "PPPoE",
            "username": "alice", "password": "pw", "router_id": created["id"]}
    with django_capture_on_commit_callbacks(execute=False):
        uid = admin.post("/customers", body).json()["uid"]
        admin.put(f"/customers/{uid}", {**body, "package_id": fast.pk})
        admin.put(f"/customers/{uid}", {**body, "package_id": fast.pk, "name": "Same"})
    reasons = list(ConnectionChange.objects.order_by("id").values_list("reason", flat=True))
    assert reasons == ["UPDATE", "PACKAGE"]  # created on the router, then the new profile


def test_a_package_profile_change_syncs_its_customers_routers(
    admin, django_capture_on_commit_callbacks
):
    created = create(admin)
    home = package()
    pppoe_customer(Router.objects.get(pk=created["id"]), "alice", package=home)
    with django_capture_on_commit_callbacks(execute=False):
        response = admin.put(f"/packages/{home.uid}", {
            "name": home.name, "speed_mbps": 20, "price": "500.00", "router_profile": "25M"})
    assert response.status_code == 200, response.content
    assert response.json()["router_profile"] == "25M"
    run = RouterRun.objects.get()
    assert (run.kind, run.trigger, run.router_id) == ("SYNC", "PACKAGE", created["id"])


def test_a_profile_change_syncs_only_enabled_routers_with_live_customers_on_it(
    admin, django_capture_on_commit_callbacks
):
    home, other = package(), package(name="Other", profile="5M")
    mixed = Router.objects.get(pk=create(admin, name="mixed")["id"])
    pppoe_customer(mixed, "alice", package=home)
    pppoe_customer(mixed, "gone", package=other, status=Status.REMOVED)
    only_removed = Router.objects.get(pk=create(admin, name="only-removed")["id"])
    pppoe_customer(only_removed, "bob", package=home, status=Status.REMOVED)
    switched_off = Router.objects.get(pk=create(admin, name="off", is_enabled=False)["id"])
    pppoe_customer(switched_off, "carol", package=home)
    elsewhere = Router.objects.get(pk=create(admin, name="elsewhere")["id"])
    pppoe_customer(elsewhere, "dave", package=other)
    with django_capture_on_commit_callbacks(execute=False):
        response = admin.put(f"/packages/{home.uid}", {
            "name": home.name, "speed_mbps": 20, "price": "500.00", "router_profile": "25M"})
        assert response.status_code == 200, response.content
        # The same profile again: nothing to carry.
        admin.put(f"/packages/{home.uid}", {
            "name": home.name, "speed_mbps": 30, "price": "500.00", "router_profile": "25M"})
    assert list(RouterRun.objects.values_list("router__name", flat=True)) == ["mixed"]


@pytest.mark.parametrize("sent", [{"password": ""}, {"password": None}])
def test_a_put_with_an_empty_password_keeps_it(admin, sent):
    router = create(admin)
    response = admin.put(f"/routers/{router['uid']}", {**BODY, **sent, "host": "edge.example"})
    assert response.status_code == 200, response.content
    assert response.json()["host"] == "edge.example"
    assert Router.objects.get().password == PASSWORD


def test_the_audit_trail_never_holds_the_password(admin):
    from auditlog.models import LogEntry

    router = create(admin)
    admin.put(f"/routers/{router['uid']}", {**BODY, "password": "second-pass", "port": 8443})
    entries = LogEntry.objects.filter(object_pk=str(router["id"]),
                                      content_type__model="router")
    assert entries.count() == 2
    for entry in entries:
        assert "password" not in (entry.changes or {})
        assert PASSWORD not in str(entry.changes) and "second-pass" not in str(entry.changes)
    assert entries.order_by("-timestamp", "-id").first().changes["port"] == ["443", "8443"]


@pytest.mark.parametrize("password", ["x" * 201, 12345, ["a"], {"a": 1}])
def test_a_refused_password_is_not_echoed(admin, password):
    response = admin.post("/routers", {**BODY, "password": password})
    assert response.status_code == 400
    assert "password" in response.json()
    assert str(password).encode() not in response.content
    assert not Router.objects.exists()


@pytest.mark.parametrize("body", [
    {**BODY, "timeout_seconds": "abc"}, {**BODY, "timeout_seconds": 0},
    {**BODY, "port": 10**30}, {**BODY, "port": -1}, {**BODY, "port": 1.5},
    {**BODY, "calls_per_second": 1001}, {**BODY, "calls_per_second": "many"},
    {**BODY, "host": "h" * 256}, {**BODY, "name": "n" * 101}, {**BODY, "kind": None},
    {**BODY, "is_enabled": "sometimes"}, {**BODY, "name": None},
])
def test_junk_is_400_never_500(admin, body):
    response = admin.post("/routers", body)
    assert response.status_code == 400, response.content
    assert not Router.objects.exists()


@pytest.mark.parametrize("missing", ["name", "host", "username"])
def test_required_fields(admin, missing):
    response = admin.post("/routers", {k: v for k, v in BODY.items() if k != missing})
    assert response.status_code == 400
    assert missing in response.json()


def test_a_body_that_is_not_an_object_is_400(admin):
    for content in (b"[1, 2]", b"not json", b""):
        response = admin.post("/routers", content)
        assert response.status_code == 400, (content, response.content)


def test_a_port_left_out_is_the_protocols_own(admin):
    response = admin.post("/routers", {key: value for key, value in BODY.items() if key != "port"})
    assert response.status_code == 201, response.content
    assert response.json()["port"] is None
    assert admin.get("/routers").json()["results"][0]["port"] is None


def test_a_rename_onto_another_live_router_is_refused(admin):
    create(admin)
    second = create(admin, name="core-2")
    response = admin.put(f"/routers/{second['uid']}", {**BODY, "name": "Core-1 "})
    assert response.status_code == 400
    assert "name" in response.json()
    assert admin.put(f"/routers/{second['uid']}", {**BODY, "name": "CORE-2"}).status_code == 200


def test_unknown_and_malformed_uids(admin):
    from uuid import uuid4

    for response in (admin.get(f"/routers/{uuid4()}"), admin.put(f"/routers/{uuid4()}", BODY),
                     admin.delete(f"/routers/{uuid4()}"), admin.post(f"/routers/{uuid4()}/sync"),
                     admin.get(f"/routers/{uuid4()}/drift")):
        assert response.status_code == 404
    assert admin.get("/routers/not-a-uuid").status_code in (400, 404)


def test_search_and_ordering(admin):
    create(admin, name="beta", host="edge.example")
    create(admin, name="alpha", host="10.0.0.9")
    create(admin, name="gamma", host="10.0.0.10")
    Router.objects.filter(name="gamma").update(drift_count=5)
    names = [row["name"] for row in admin.get("/routers?search=edge").json()["results"]]
    assert names == ["beta"]
    assert [r["name"] for r in admin.get("/routers?search=gam").json()["results"]] == ["gamma"]
    by_name = admin.get("/routers?ordering=name").json()["results"]
    assert [row["name"] for row in by_name] == ["alpha", "beta", "gamma"]
    by_drift = admin.get("/routers?ordering=-drift_count").json()["results"]
    # Ties newest first, as the first field's direction.
    assert [row["name"] for row in by_drift] == ["gamma", "alpha", "beta"]
    newest = admin.get("/routers").json()["results"]
    assert [row["name"] for row in newest] == ["gamma", "alpha", "beta"]
    assert admin.get("/routers?ordering=password").status_code == 400
    page = admin.get("/routers?page_size=2").json()
    assert (page["count"], len(page["results"])) == (3, 2) and page["next"]


def test_drift_answers_what_the_last_sync_found(admin):
    router = create(admin)
    drift = [{"username": "alice", "problem": "disabled on the router"},
             {"username": "stranger", "problem": "no customer"}]
    Router.objects.filter(pk=router["id"]).update(drift=drift, drift_count=2)
    response = admin.get(f"/routers/{router['uid']}/drift")
    assert response.status_code == 200
    assert response.json() == {"drift_count": 2, "drift": drift, "last_sync_at": None}
    assert admin.get(f"/routers/{router['uid']}").json()["drift_count"] == 2
    assert "drift" not in admin.get(f"/routers/{router['uid']}").json()


def test_import_is_a_dry_run_unless_told_otherwise(admin, django_capture_on_commit_callbacks):
    first, second = create(admin, name="a"), create(admin, name="b")
    with django_capture_on_commit_callbacks(execute=False):
        unsaid = admin.post(f"/routers/{first['uid']}/import")
        confirmed = admin.post(f"/routers/{second['uid']}/import", {"dry_run": False})
    assert unsaid.status_code == confirmed.status_code == 202
    assert RouterRun.objects.get(task_id=unsaid.json()["task_id"]).dry_run is True
    run = RouterRun.objects.get(task_id=confirmed.json()["task_id"])
    assert (run.kind, run.dry_run, run.router_id) == ("IMPORT", False, second["id"])
    status = admin.get(f"/tasks/{run.task_id}").json()
    assert (status["status"], status["progress"]) == ("PENDING", None)
    assert (status["result"]["kind"], status["result"]["dry_run"]) == ("IMPORT", False)
    assert PASSWORD not in str(status)


def test_a_removed_or_switched_off_router_does_not_run(admin):
    off = create(admin, name="off", is_enabled=False)
    response = admin.post(f"/routers/{off['uid']}/import", {"dry_run": True})
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    gone = create(admin, name="gone")
    admin.delete(f"/routers/{gone['uid']}")
    assert admin.post(f"/routers/{gone['uid']}/sync").status_code == 404
    assert admin.post(f"/routers/{gone['uid']}/import").status_code == 404
    assert not RouterRun.objects.exists()


def test_task_status_stays_with_managers(client_as, admin, django_capture_on_commit_callbacks):
    router = create(admin)
    with django_capture_on_commit_callbacks(execute=False):
        task_id = admin.post(f"/routers/{router['uid']}/sync").json()["task_id"]
    for kind, status in ((UserKind.MANAGER, 200), (UserKind.STAFF, 403),
                         (UserKind.CUSTOMER, 403)):
        client, _ = client_as(kind)
        assert client.get(f"/tasks/{task_id}").status_code == status, kind


@pytest.mark.parametrize("raw", [
    b'"timeout_seconds": NaN', b'"timeout_seconds": Infinity', b'"port": 1e400',
    b'"calls_per_second": -Infinity',
])
def test_numbers_json_cannot_hold_are_400(admin, raw):
    body = b'{"name": "n", "host": "h", "username": "u", "password": "p", ' + raw + b"}"
    response = admin.post("/routers", body)
    assert response.status_code == 400, response.content
    assert not Router.objects.exists()


def test_a_package_profile_is_at_most_64_characters(admin):
    response = admin.post("/packages", {"name": "P", "speed_mbps": 5, "price": "10",
                                        "router_profile": "p" * 65})
    assert response.status_code == 400
    assert "router_profile" in response.json()
    created = admin.post("/packages", {"name": "P", "speed_mbps": 5, "price": "10",
                                       "router_profile": " 5M "})
    assert created.json()["router_profile"] == "5M"
