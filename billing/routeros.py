"""Speaking to MikroTik routers: RouterOS v7 REST (``requests``) or the classic API on
8728/8729 (``librouteros``), behind one small client interface.

Every row comes back the REST way whatever the protocol: a dict of strings, booleans
as "true"/"false", the row's id under ".id". Every call has the router's timeout, all
the calls of one client may share a deadline, and no router gets more than its
``calls_per_second`` from all workers together (a counter per router and second in the
cache; a per-process one when the cache is down). Errors are ``RouterError``: a router
that is unreachable, slow, answers an error, or (``RouterAuthError``) refuses our user.
No message carries the router's password.
"""

import ssl
import threading
import time
from collections import defaultdict
from typing import Protocol

import requests
from librouteros import connect
from librouteros.api import Api
from librouteros.exceptions import LibRouterosError, MultiTrapError, TrapError
from librouteros.login import plain

from billing.models import Router
from core.cache import cache_incr
from core.enums import RouterKind

PPP_SECRET, PPP_ACTIVE = "ppp/secret", "ppp/active"
ADDRESS_LIST, DHCP_LEASE, PPP_PROFILE = "ip/firewall/address-list", "ip/dhcp-server/lease", \
    "ppp/profile"
# The fields the bulk listings need: a router's full rows are several times larger.
PROPLISTS = {
    PPP_SECRET: ".id,name,password,profile,disabled,remote-address,comment,service",
    PPP_ACTIVE: ".id,name,address,caller-id",
    ADDRESS_LIST: ".id,list,address,comment,disabled",
    DHCP_LEASE: ".id,address,mac-address,host-name,comment,disabled,dynamic",
    PPP_PROFILE: ".id,name,rate-limit",
}


class NetworkError(Exception):
    """The router did not confirm what it was asked."""


class RouterError(NetworkError):
    """A router was unreachable, too slow, or answered an error."""


class RouterAuthError(RouterError):
    """The router refused our user name or password."""


class RouterClient(Protocol):
    calls: int

    def secrets(self) -> list[dict]: ...
    def active_sessions(self) -> list[dict]: ...
    def address_list(self, list_name: str) -> list[dict]: ...
    def dhcp_leases(self) -> list[dict]: ...
    def profiles(self) -> list[dict]: ...
    def secret_named(self, name: str) -> dict | None: ...
    def sessions_named(self, name: str) -> list[dict]: ...
    def address_entries(self, list_name: str, address: str) -> list[dict]: ...
    def set_secret(self, secret_id: str, fields: dict[str, str]) -> None: ...
    def add_secret(self, fields: dict[str, str]) -> str: ...
    def drop_session(self, session_id: str) -> None: ...
    def add_address(self, list_name: str, address: str, comment: str) -> str: ...
    def remove_address(self, entry_id: str) -> None: ...
    def close(self) -> None: ...


def router_client(router: Router, *, deadline: float | None = None) -> RouterClient:
    """A client for ``router``; ``deadline``: seconds all its calls together may take."""
    if router.kind == RouterKind.ROUTEROS_API:
        return ApiClient(router, deadline=deadline)
    return RestClient(router, deadline=deadline)


class _Limiter:
    """At most ``calls_per_second`` calls a second per router, across processes."""

    _local: dict[tuple[int, int], int] = defaultdict(int)
    _lock = threading.Lock()

    @classmethod
    def wait(cls, router: Router, ends_at: float) -> None:
        while True:
            now = time.time()
            second = int(now)
            count = cache_incr(f"routeros:rate:{router.pk}:{second}", timeout=2)
            if count is None:
                with cls._lock:
                    cls._local[router.pk, second] += 1
                    count = cls._local[router.pk, second]
                    for key in [k for k in cls._local if k[1] < second]:
                        del cls._local[key]
            if count <= router.calls_per_second:
                return
            pause = second + 1 - now
            if time.monotonic() + pause > ends_at:
                raise RouterError(f"router {router.name} too slow: no call allowed in time")
            time.sleep(pause)


class _Client:
    def __init__(self, router: Router, *, deadline: float | None) -> None:
        self.router = router
        self.calls = 0
        self._ends_at = time.monotonic() + deadline if deadline is not None else float("inf")

    def _before_call(self) -> float:
        """The time the next call may take; raises when the deadline has passed."""
        _Limiter.wait(self.router, self._ends_at)
        left = self._ends_at - time.monotonic()
        if left <= 0:
            raise RouterError(f"router {self.router.name} too slow: out of time")
        self.calls += 1
        return min(self.router.timeout_seconds, left)

    def _error(self, what: str) -> str:
        return f"router {self.router.name}: {what}".replace(self.router.password or "\0", "***")


class RestClient(_Client):
    """RouterOS v7 REST: ``http(s)://host[:port]/rest``, HTTP Basic, JSON of strings."""

    def __init__(self, router: Router, *, deadline: float | None) -> None:
        super().__init__(router, deadline=deadline)
        scheme = "https" if router.use_tls else "http"
        port = f":{router.port}" if router.port else ""
        self.base = f"{scheme}://{router.host}{port}/rest"
        self.session = requests.Session()
        self.session.auth = (router.username, router.password)
        self.session.verify = router.verify_tls

    def _call(self, method: str, path: str, **kwargs):
        timeout = self._before_call()
        try:
            response = self.session.request(method, f"{self.base}/{path}", timeout=timeout,
                                            **kwargs)
        except requests.Timeout as error:
            raise RouterError(self._error(f"too slow: timed out after {timeout:.1f} s")) from error
        except requests.RequestException as error:
            raise RouterError(self._error(f"unreachable ({type(error).__name__})")) from error
        if response.status_code in (401, 403):
            raise RouterAuthError(self._error(f"refused our login ({response.status_code})"))
        if response.status_code >= 400:
            raise RouterError(self._error(
                f"answered {response.status_code}: {response.text[:200]}"))
        try:
            return response.json() if response.content else None
        except ValueError as error:
            raise RouterError(self._error("answered something that is not JSON")) from error

    def _list(self, table: str, *, bulk: bool, **filters: str) -> list[dict]:
        params = {**filters, ".proplist": PROPLISTS[table]} if bulk else filters
        rows = self._call("GET", table, params=params)
        if not isinstance(rows, list):
            raise RouterError(self._error(f"answered a {type(rows).__name__} for {table}"))
        return rows

    def _create(self, table: str, fields: dict[str, str]) -> str:
        created = self._call("PUT", table, json=fields)
        if not isinstance(created, dict) or not created.get(".id"):
            raise RouterError(self._error(f"did not confirm the new {table} entry"))
        return created[".id"]

    def secrets(self) -> list[dict]:
        return self._list(PPP_SECRET, bulk=True)

    def active_sessions(self) -> list[dict]:
        return self._list(PPP_ACTIVE, bulk=True)

    def address_list(self, list_name: str) -> list[dict]:
        return self._list(ADDRESS_LIST, bulk=True, list=list_name)

    def dhcp_leases(self) -> list[dict]:
        return self._list(DHCP_LEASE, bulk=True)

    def profiles(self) -> list[dict]:
        return self._list(PPP_PROFILE, bulk=True)

    def secret_named(self, name: str) -> dict | None:
        rows = self._list(PPP_SECRET, bulk=False, name=name)
        return rows[0] if rows else None

    def sessions_named(self, name: str) -> list[dict]:
        return self._list(PPP_ACTIVE, bulk=False, name=name)

    def address_entries(self, list_name: str, address: str) -> list[dict]:
        return self._list(ADDRESS_LIST, bulk=False, list=list_name, address=address)

    def set_secret(self, secret_id: str, fields: dict[str, str]) -> None:
        self._call("PATCH", f"{PPP_SECRET}/{secret_id}", json=fields)

    def add_secret(self, fields: dict[str, str]) -> str:
        return self._create(PPP_SECRET, fields)

    def drop_session(self, session_id: str) -> None:
        self._call("DELETE", f"{PPP_ACTIVE}/{session_id}")

    def add_address(self, list_name: str, address: str, comment: str) -> str:
        return self._create(ADDRESS_LIST, {"list": list_name, "address": address,
                                           "comment": comment})

    def remove_address(self, entry_id: str) -> None:
        self._call("DELETE", f"{ADDRESS_LIST}/{entry_id}")

    def close(self) -> None:
        self.session.close()


class _TextApi(Api):
    """librouteros, reading every value as the router sent it: its own reading turns
    "yes"/"no" into booleans and digits into numbers, so a comment "yes" or a password
    "1234" would come back changed. The API's booleans are already "true"/"false"."""

    def readSentence(self):  # noqa: N802 (librouteros's name)
        reply_word, words = self.protocol.readSentence()
        return reply_word, dict(word[1:].split("=", 1) for word in words if "=" in word[1:])


class ApiClient(_Client):
    """The classic RouterOS API (8728, or 8729 with TLS) through ``librouteros``: one
    connection and login per client, opened by its first call."""

    def __init__(self, router: Router, *, deadline: float | None) -> None:
        super().__init__(router, deadline=deadline)
        self._api: Api | None = None

    def _tls_wrapper(self):
        if not self.router.use_tls:
            return None
        context = ssl.create_default_context()
        if not self.router.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        host = self.router.host
        return lambda sock: context.wrap_socket(sock, server_hostname=host)

    def _connection(self, timeout: float) -> Api:
        if self._api is None:
            port = self.router.port or (8729 if self.router.use_tls else 8728)
            try:
                self._api = connect(
                    host=self.router.host, username=self.router.username,
                    password=self.router.password, port=port, timeout=timeout,
                    ssl_wrapper=self._tls_wrapper(), login_method=plain, subclass=_TextApi,
                    encoding="utf-8",
                )
            except (TrapError, MultiTrapError) as error:
                raise RouterAuthError(self._error("refused our login")) from error
            except TimeoutError as error:
                raise RouterError(
                    self._error(f"too slow: login timed out after {timeout:.1f} s")) from error
            except (LibRouterosError, OSError, UnicodeError) as error:
                raise RouterError(self._error(f"unreachable ({type(error).__name__})")) from error
        return self._api

    def _call(self, command: str, *words: str) -> list[dict]:
        timeout = self._before_call()
        api = self._connection(timeout)
        try:
            api.protocol.transport.sock.settimeout(timeout)
            return list(api.rawCmd(command, *words))
        except (TrapError, MultiTrapError) as error:
            raise RouterError(self._error(f"answered an error: {error}")) from error
        except TimeoutError as error:
            self.close()  # an answer may still come: this connection is out of step
            raise RouterError(self._error(f"too slow: timed out after {timeout:.1f} s")) from error
        except (LibRouterosError, OSError, UnicodeError) as error:
            self.close()  # the connection is in an unknown state: a new one next time
            raise RouterError(self._error(f"unreachable ({type(error).__name__})")) from error

    def _print(self, table: str, *, bulk: bool, **filters: str) -> list[dict]:
        words = [f"?{key}={value}" for key, value in filters.items()]
        if bulk:
            words.append(f"=.proplist={PROPLISTS[table]}")
        return self._call(f"/{table}/print", *words)

    def _create(self, table: str, fields: dict[str, str]) -> str:
        done = self._call(f"/{table}/add", *(f"={key}={value}" for key, value in fields.items()))
        if not done or not done[0].get("ret"):
            raise RouterError(self._error(f"did not confirm the new {table} entry"))
        return done[0]["ret"]

    def secrets(self) -> list[dict]:
        return self._print(PPP_SECRET, bulk=True)

    def active_sessions(self) -> list[dict]:
        return self._print(PPP_ACTIVE, bulk=True)

    def address_list(self, list_name: str) -> list[dict]:
        return self._print(ADDRESS_LIST, bulk=True, list=list_name)

    def dhcp_leases(self) -> list[dict]:
        return self._print(DHCP_LEASE, bulk=True)

    def profiles(self) -> list[dict]:
        return self._print(PPP_PROFILE, bulk=True)

    def secret_named(self, name: str) -> dict | None:
        rows = self._print(PPP_SECRET, bulk=False, name=name)
        return rows[0] if rows else None

    def sessions_named(self, name: str) -> list[dict]:
        return self._print(PPP_ACTIVE, bulk=False, name=name)

    def address_entries(self, list_name: str, address: str) -> list[dict]:
        return self._print(ADDRESS_LIST, bulk=False, list=list_name, address=address)

    def set_secret(self, secret_id: str, fields: dict[str, str]) -> None:
        self._call(f"/{PPP_SECRET}/set", f"=.id={secret_id}",
                   *(f"={key}={value}" for key, value in fields.items()))

    def add_secret(self, fields: dict[str, str]) -> str:
        return self._create(PPP_SECRET, fields)

    def drop_session(self, session_id: str) -> None:
        self._call(f"/{PPP_ACTIVE}/remove", f"=.id={session_id}")

    def add_address(self, list_name: str, address: str, comment: str) -> str:
        return self._create(ADDRESS_LIST, {"list": list_name, "address": address,
                                           "comment": comment})

    def remove_address(self, entry_id: str) -> None:
        self._call(f"/{ADDRESS_LIST}/remove", f"=.id={entry_id}")

    def close(self) -> None:
        if self._api is not None:
            try:
                self._api.close()
            except (LibRouterosError, OSError):
                pass
            self._api = None
