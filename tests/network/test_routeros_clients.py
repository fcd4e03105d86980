"""Both router clients (RouterOS REST and the classic API) against the fakes: what each
call reads and writes, rows the REST way, errors mapped, timeouts, deadline, rate."""

import os
import threading
import time

import pytest
import requests
from django.core.cache import cache

from billing.models import Router
from billing.routeros import ApiClient, RestClient, RouterAuthError, RouterError, router_client
from core.enums import RouterKind
from tests.network.fake_routeros import free_port
from tests.network.fake_routeros_api import FakeRouterOSApi

BLOCKED = "billing-blocked"


@pytest.fixture(params=[RouterKind.ROUTEROS_REST, RouterKind.ROUTEROS_API])
def kind(request):
    return request.param


@pytest.fixture
def api_fake(fake):
    server = FakeRouterOSApi(fake).start()
    yield server
    server.stop()


def router_for(fake, api_fake, kind, **fields) -> Router:
    """An unsaved router: a client needs no database row."""
    port = api_fake.port if kind == RouterKind.ROUTEROS_API else fake.port
    return Router(pk=fields.pop("pk", 1), name="core-1", kind=kind, host="127.0.0.1",
                  port=port, use_tls=False, username=fake.user,
                  password=fields.pop("password", fake.password),
                  timeout_seconds=fields.pop("timeout", 2.0),
                  calls_per_second=fields.pop("calls_per_second", 1000))


@pytest.fixture
def client_for(fake, api_fake, kind):
    """Clients of the fake over ``kind``'s protocol, closed after the test."""
    opened = []

    def make(*, deadline: float | None = None, **fields):
        made = router_client(router_for(fake, api_fake, kind, **fields), deadline=deadline)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


@pytest.fixture
def client(client_for):
    return client_for()


def test_the_kind_picks_the_protocol(fake, api_fake):
    assert isinstance(router_client(router_for(fake, api_fake, RouterKind.ROUTEROS_REST)),
                      RestClient)
    assert isinstance(router_client(router_for(fake, api_fake, RouterKind.ROUTEROS_API)),
                      ApiClient)


def test_bulk_listings_are_one_call_each_and_rows_are_strings(fake, client):
    fake.bulk_secrets(3, prefix="u", disabled=True)
    fake.add_session("u0")
    fake.add_address(BLOCKED, "10.0.0.9", comment="billing:x")
    fake.add_address("other-list", "10.0.0.8")
    fake.add_lease("10.1.1.1", "AA:BB:CC:00:00:01", host_name="shop")
    fake.add_profile("20M", rate_limit="20M/20M")

    secrets = client.secrets()
    assert sorted(row["name"] for row in secrets) == ["u0", "u1", "u2"]
    assert all(row["disabled"] == "true" and row[".id"].startswith("*") for row in secrets)
    assert [row["name"] for row in client.active_sessions()] == ["u0"]
    assert [(row["address"], row["comment"]) for row in client.address_list(BLOCKED)] == [
        ("10.0.0.9", "billing:x")]
    assert [row["mac-address"] for row in client.dhcp_leases()] == ["AA:BB:CC:00:00:01"]
    assert [row["rate-limit"] for row in client.profiles()] == ["20M/20M"]
    assert client.calls == 5


def test_filtered_reads(fake, client):
    fake.bulk_secrets(5, prefix="u")
    fake.add_session("u3")
    fake.add_session("u3")
    fake.add_address(BLOCKED, "10.0.0.9")
    assert client.secret_named("u3")["name"] == "u3"
    assert client.secret_named("nobody") is None
    assert len(client.sessions_named("u3")) == 2
    assert len(client.address_entries(BLOCKED, "10.0.0.9")) == 1
    assert client.address_entries(BLOCKED, "10.0.0.1") == []


def test_writes_change_the_router(fake, client):
    ident = client.add_secret({"name": "new", "password": "pw", "profile": "20M",
                               "disabled": "false", "comment": "billing:u"})
    assert fake.secret("new")[".id"] == ident
    client.set_secret(ident, {"disabled": "true", "profile": "5M"})
    assert (fake.secret("new")["disabled"], fake.secret("new")["profile"]) == ("true", "5M")
    session = fake.add_session("new")
    client.drop_session(session)
    assert fake.sessions_of("new") == []
    entry = client.add_address(BLOCKED, "10.0.0.7", "billing:u")
    assert fake.address_entries(BLOCKED)[0][".id"] == entry
    client.remove_address(entry)
    assert fake.address_entries(BLOCKED) == []


def test_a_refused_write_is_an_error(fake, client):
    fake.add_secret("dup")
    with pytest.raises(RouterError):
        client.add_secret({"name": "dup", "password": "pw"})
    with pytest.raises(RouterError):
        client.drop_session("*FFFF")


def test_values_come_back_as_the_router_holds_them(fake, client):
    # librouteros on its own reads "yes" as True and "1234" as 1234
    client.add_secret({"name": "literal", "password": "1234", "comment": "yes",
                       "disabled": "true"})
    (row,) = client.secrets()
    assert (row["password"], row["comment"], row["disabled"]) == ("1234", "yes", "true")
    assert all(isinstance(value, str) for value in row.values())
    assert fake.secret("literal")["comment"] == "yes"


def test_bulk_listings_ask_for_few_fields_and_filtered_reads_for_one_name(fake, client):
    fake.add_secret("u1")
    client.secrets()
    client.secret_named("u1")
    listing, named = fake.calls("GET")
    assert "name" in listing.query.get(".proplist", "").split(",")
    assert named.query == {"name": "u1"}


def test_wrong_credentials_are_an_auth_error_without_the_password(fake, api_fake, kind):
    client = router_client(router_for(fake, api_fake, kind, password="not-the-password"))
    with pytest.raises(RouterAuthError) as raised:
        client.secrets()
    assert "not-the-password" not in str(raised.value)


def test_a_router_refusing_everyone_is_an_auth_error(fake, client):
    fake.wrong_credentials()
    with pytest.raises(RouterAuthError):
        client.secrets()
    fake.recover()
    assert client.secrets() == []


def test_a_router_that_is_down_is_an_error_quickly_then_answers_again(fake, client):
    client.secrets()
    fake.go_down()
    started = time.monotonic()
    with pytest.raises(RouterError) as raised:
        client.secrets()
    assert time.monotonic() - started < 1.0
    assert fake.password not in str(raised.value)
    fake.come_up()
    fake.add_secret("back")
    assert [row["name"] for row in client.secrets()] == ["back"]


@pytest.mark.parametrize("status", [500, 503])
def test_a_router_error_is_an_error(fake, client, status):
    fake.fail_next(1, status=status)
    with pytest.raises(RouterError) as raised:
        client.secrets()
    assert not isinstance(raised.value, RouterAuthError)
    assert fake.password not in str(raised.value)
    assert client.secrets() == []  # the next call is answered


def test_an_answer_that_is_not_json_is_an_error(fake, api_fake):
    client = router_client(router_for(fake, api_fake, RouterKind.ROUTEROS_REST))
    fake.fail_next(1, status=200, body=b"<html>WebFig</html>")
    with pytest.raises(RouterError, match="not JSON"):
        client.secrets()


@pytest.mark.parametrize("logged_in_first", [False, True])
def test_a_router_that_hangs_is_an_error_within_the_timeout(fake, client_for, logged_in_first):
    client = client_for(timeout=0.5)
    if logged_in_first:
        client.secrets()
    fake.hang()
    started = time.monotonic()
    with pytest.raises(RouterError):
        client.secrets()
    assert 0.4 < time.monotonic() - started < 1.5
    fake.recover()


def test_all_calls_of_a_client_stay_within_its_deadline(fake, client_for):
    client = client_for(timeout=2, deadline=0.5)
    fake.delay = 0.2
    started = time.monotonic()
    with pytest.raises(RouterError, match="too slow"):
        for _ in range(10):
            client.secrets()
    assert time.monotonic() - started < 1.0
    assert 1 <= client.calls <= 3


def timed_calls(client, count: int) -> float:
    started = time.monotonic()
    for _ in range(count):
        client.secrets()
    return time.monotonic() - started


def test_calls_per_second_are_limited_per_router(client_for):
    client = client_for(calls_per_second=5, pk=9001)
    # 16 calls at 5 a second need four wall-clock seconds: three boundaries at least 2 s
    # apart wherever in a second they start
    assert 2.0 <= timed_calls(client, 16) < 4.5
    assert client.calls == 16


def test_the_limit_is_per_router(client_for):
    first = client_for(calls_per_second=5, pk=9003)
    second = client_for(calls_per_second=5, pk=9004)
    started = time.monotonic()
    for _ in range(4):
        first.secrets()
        second.secrets()
    assert time.monotonic() - started < 1.0


def test_the_limit_holds_with_the_cache_down(client_for, settings):
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 0.1, "socket_timeout": 0.1},
    }}
    client = client_for(calls_per_second=5, pk=9002)
    assert 2.0 <= timed_calls(client, 16) < 4.5


@pytest.mark.redis
def test_the_limit_is_shared_through_redis(client_for, settings):
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": settings.REDIS_URL, "KEY_PREFIX": f"routeros-test-{os.getpid()}",
    }}
    workers = [client_for(calls_per_second=5, pk=9005) for _ in range(2)]
    started = time.monotonic()
    threads = [threading.Thread(target=timed_calls, args=(worker, 8)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 2.0
    assert cache.get(f"routeros:rate:9005:{int(time.time())}") is not None
    assert sum(worker.calls for worker in workers) == 16


def test_twenty_thousand_secrets_are_listed_in_one_call(fake, client):
    # How long it takes is bench/router_sync.py's business, not a test's (CI machines vary).
    fake.bulk_secrets(20_000)
    rows = client.secrets()
    assert len(rows) == 20_000
    assert client.calls == 1
    assert {row["name"] for row in rows} == {f"user{n}" for n in range(20_000)}


# The REST fake itself: what the clients do not exercise.

def rest(fake, method: str, path: str, **kwargs):
    return requests.request(method, f"{fake.url}/{path}", auth=(fake.user, fake.password),
                            timeout=5, **kwargs)


def test_the_fake_answers_as_routeros(fake):
    created = rest(fake, "PUT", "ppp/secret", json={"name": "a", "password": "p"})
    assert created.status_code == 201 and created.json()["disabled"] == "false"
    ident = created.json()[".id"]
    assert rest(fake, "GET", f"ppp/secret/{ident}").json()["name"] == "a"
    duplicate = rest(fake, "PUT", "ppp/secret", json={"name": "a", "password": "p"})
    assert duplicate.status_code == 400 and duplicate.json()["error"] == 400
    missing = rest(fake, "GET", "ppp/secret/*FFFF")
    assert missing.status_code == 404
    assert missing.json() == {"error": 404, "message": "Not Found"}
    assert rest(fake, "PATCH", f"ppp/secret/{ident}", json={"disabled": "maybe"}).status_code \
        == 400
    printed = rest(fake, "POST", "ppp/secret/print",
                   json={".query": ["name=a"], ".proplist": ["name"]})
    assert printed.json() == [{"name": "a"}]
    assert rest(fake, "DELETE", f"ppp/secret/{ident}").status_code == 204
    assert rest(fake, "GET", "ppp/secret").json() == []


def test_a_reverted_router_forgets_what_it_was_told(fake):
    fake.add_secret("kept")
    snapshot = fake.snapshot()
    fake.add_secret("lost")
    fake.add_address(BLOCKED, "10.0.0.1")
    fake.revert(snapshot)
    assert [row["name"] for row in rest(fake, "GET", "ppp/secret").json()] == ["kept"]
    assert fake.address_entries(BLOCKED) == []


def test_the_fake_lists_twenty_thousand_secrets_quickly(fake):
    fake.bulk_secrets(20_000)
    started = time.monotonic()
    response = rest(fake, "GET", "ppp/secret", params={".proplist": ".id,name,disabled"})
    assert len(response.json()) == 20_000
    assert time.monotonic() - started < 1.0
