"""MikroTikBackend (RouterOS v7 REST) against the fake router on 127.0.0.1."""

import time

import pytest
import requests

from billing.network import LoggingBackend, MikroTikBackend, NetworkError, network_backend
from tests.network.fake_routeros import free_port


def backend_for(router, *, url=None, password=None, timeout=2.0) -> MikroTikBackend:
    return MikroTikBackend(
        url=url or router.url,
        user=router.user,
        password=router.password if password is None else password,
        verify_tls=True,
        timeout=timeout,
    )


# The fake itself answers as RouterOS does ------------------------------------


def test_fake_answers_like_routeros(router):
    ident = router.add_secret("alice")
    auth = (router.user, router.password)

    found = requests.get(f"{router.url}/ppp/secret", params={"name": "alice"}, auth=auth, timeout=2)
    assert found.status_code == 200
    (row,) = found.json()
    assert (row[".id"], row["name"], row["disabled"], row["service"]) == (
        ident,
        "alice",
        "false",
        "pppoe",
    )
    assert {".id", "name", "disabled", "profile", "service"} <= set(row)
    assert all(isinstance(value, str) for value in row.values())
    assert (
        requests.get(
            f"{router.url}/ppp/secret", params={"name": "bob"}, auth=auth, timeout=2
        ).json()
        == []
    )

    patched = requests.patch(
        f"{router.url}/ppp/secret/{ident}", json={"disabled": "true"}, auth=auth, timeout=2
    )
    assert patched.status_code == 200 and patched.json()["disabled"] == "true"

    refused = requests.get(f"{router.url}/ppp/secret", auth=(router.user, "wrong"), timeout=2)
    assert refused.status_code == 401
    assert refused.json() == {"error": 401, "message": "Unauthorized"}

    missing = requests.delete(f"{router.url}/ppp/active/*99", auth=auth, timeout=2)
    assert missing.status_code == 404
    assert missing.json() == {"error": 404, "message": "Not Found"}

    router.fail_next(1, status=503)
    assert requests.get(f"{router.url}/ppp/active", auth=auth, timeout=2).status_code == 503
    assert requests.get(f"{router.url}/ppp/active", auth=auth, timeout=2).status_code == 200


# Switching off and on -------------------------------------------------------


def test_disable_disables_the_secret_and_drops_the_session(router):
    router.add_secret("alice")
    router.add_session("alice")
    router.add_secret("bob")
    router.add_session("bob")

    backend_for(router).set_enabled(username="alice", enabled=False)

    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []
    # Nobody else is touched.
    assert router.secret("bob")["disabled"] == "false"
    assert len(router.sessions_of("bob")) == 1
    patches = router.calls("PATCH")
    assert [(p.path, p.body) for p in patches] == [
        (f"/rest/ppp/secret/{router.secret('alice')['.id']}", {"disabled": "true"})
    ]


def test_disable_drops_every_session_of_the_user(router):
    router.add_secret("alice")
    router.add_session("alice")
    router.add_session("alice")

    backend_for(router).set_enabled(username="alice", enabled=False)

    assert router.sessions_of("alice") == []
    assert len(router.calls("DELETE")) == 2


def test_enable_enables_the_secret(router):
    router.add_secret("alice", disabled=True)

    backend_for(router).set_enabled(username="alice", enabled=True)

    assert router.secret("alice")["disabled"] == "false"
    assert [p.body for p in router.calls("PATCH")] == [{"disabled": "false"}]
    assert router.calls("DELETE") == []


def test_enable_leaves_a_live_session_alone(router):
    router.add_secret("alice", disabled=True)
    router.add_session("alice")

    backend_for(router).set_enabled(username="alice", enabled=True)

    assert len(router.sessions_of("alice")) == 1


def test_disable_is_idempotent(router):
    router.add_secret("alice")
    router.add_session("alice")
    backend = backend_for(router)

    backend.set_enabled(username="alice", enabled=False)
    backend.set_enabled(username="alice", enabled=False)

    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []
    assert len(router.calls("PATCH")) == 1  # nothing to change the second time


def test_disable_of_an_already_disabled_secret_still_drops_the_session(router):
    router.add_secret("alice", disabled=True)
    router.add_session("alice")

    backend_for(router).set_enabled(username="alice", enabled=False)

    assert router.calls("PATCH") == []
    assert router.sessions_of("alice") == []


def test_enable_is_idempotent(router):
    router.add_secret("alice")
    backend = backend_for(router)

    backend.set_enabled(username="alice", enabled=True)
    backend.set_enabled(username="alice", enabled=True)

    assert router.secret("alice")["disabled"] == "false"
    assert router.calls("PATCH") == []


# The router does not confirm -------------------------------------------------


def test_unknown_secret_is_an_error(router):
    router.add_secret("alice")

    with pytest.raises(NetworkError, match="nobody"):
        backend_for(router).set_enabled(username="nobody", enabled=False)

    assert router.secret("alice")["disabled"] == "false"
    assert router.calls("PATCH") == []


def test_wrong_router_password_is_an_error(router):
    router.add_secret("alice")

    with pytest.raises(NetworkError, match="401"):
        backend_for(router, password="not-the-password").set_enabled(
            username="alice", enabled=False
        )

    assert router.secret("alice")["disabled"] == "false"
    assert [r.status for r in router.calls()] == [401]


@pytest.mark.parametrize("status", [500, 503])
def test_router_failing_is_an_error(router, status):
    router.add_secret("alice")
    router.fail_next(1, status=status)

    with pytest.raises(NetworkError, match=str(status)):
        backend_for(router).set_enabled(username="alice", enabled=False)

    assert router.secret("alice")["disabled"] == "false"


def test_router_failing_on_the_change_itself_is_an_error(router):
    router.add_secret("alice")
    router.add_session("alice")
    router.fail_next(1, status=500, method="PATCH")

    with pytest.raises(NetworkError, match="500"):
        backend_for(router).set_enabled(username="alice", enabled=False)
    assert router.secret("alice")["disabled"] == "false"

    backend_for(router).set_enabled(username="alice", enabled=False)  # a retry
    assert router.secret("alice")["disabled"] == "true"
    assert router.sessions_of("alice") == []


def test_router_failing_to_drop_the_session_is_an_error(router):
    router.add_secret("alice")
    router.add_session("alice")
    router.fail_next(1, status=503, method="DELETE")

    with pytest.raises(NetworkError, match="503"):
        backend_for(router).set_enabled(username="alice", enabled=False)
    assert len(router.sessions_of("alice")) == 1


def test_router_answering_something_that_is_not_json_is_an_error(router):
    router.add_secret("alice")
    router.fail_next(1, status=200, body=b"<html>WebFig</html>")

    with pytest.raises(NetworkError):
        backend_for(router).set_enabled(username="alice", enabled=False)


def test_router_slower_than_the_timeout_is_an_error(router):
    router.add_secret("alice")
    router.delay = 2.0

    started = time.monotonic()
    with pytest.raises(NetworkError):
        backend_for(router, timeout=0.2).set_enabled(username="alice", enabled=False)

    assert time.monotonic() - started < 1.5
    assert router.secret("alice")["disabled"] == "false"


def test_all_calls_of_one_change_stay_within_the_deadline(router):
    """Each answer within the timeout, but four of them (find, disable, find sessions,
    drop) would outlast the attempt's lease on the customer: it stops at the deadline."""
    router.add_secret("alice")
    router.add_session("alice")
    router.delay = 0.4
    backend = MikroTikBackend(url=router.url, user=router.user, password=router.password,
                              verify_tls=True, timeout=5, deadline=0.6)

    started = time.monotonic()
    with pytest.raises(NetworkError):
        backend.set_enabled(username="alice", enabled=False)

    took = time.monotonic() - started
    assert took < 1.2, took
    assert len(router.sessions_of("alice")) == 1


def test_unreachable_router_is_an_error():
    backend = MikroTikBackend(
        url=f"http://127.0.0.1:{free_port()}",
        user="api",
        password="x",
        verify_tls=True,
        timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(NetworkError, match="unreachable"):
        backend.set_enabled(username="alice", enabled=False)
    assert time.monotonic() - started < 2


# Configuration --------------------------------------------------------------


@pytest.mark.parametrize("form", ["{root}", "{root}/", "{root}/rest", "{root}/rest/"])
def test_url_with_or_without_rest(router, form):
    router.add_secret("alice")
    router.add_session("alice")

    backend_for(router, url=form.format(root=router.root_url)).set_enabled(
        username="alice", enabled=False
    )

    assert router.secret("alice")["disabled"] == "true"
    assert {r.path.rsplit("/", 1)[0] for r in router.calls()} >= {"/rest/ppp/secret"}
    assert all(r.path.startswith("/rest/ppp/") and r.status < 400 for r in router.calls())


def test_network_backend_follows_the_settings(settings, router):
    settings.NETWORK_BACKEND = "logging"
    assert isinstance(network_backend(), LoggingBackend)

    settings.NETWORK_BACKEND = "mikrotik"
    settings.MIKROTIK_URL = router.root_url
    settings.MIKROTIK_USER = router.user
    settings.MIKROTIK_PASSWORD = router.password
    settings.MIKROTIK_VERIFY_TLS = False
    settings.MIKROTIK_TIMEOUT_SECONDS = 0.2
    backend = network_backend()
    assert isinstance(backend, MikroTikBackend)
    assert backend.session.verify is False
    assert backend.timeout == 0.2
    assert backend.deadline == settings.NETWORK_ATTEMPT_SECONDS

    router.add_secret("alice")
    backend.set_enabled(username="alice", enabled=False)
    assert router.secret("alice")["disabled"] == "true"

    settings.MIKROTIK_PASSWORD = "stale"
    with pytest.raises(NetworkError):
        network_backend().set_enabled(username="alice", enabled=True)
