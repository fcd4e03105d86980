"""A small fake MikroTik RouterOS v7 REST server, standard library only.

It keeps PPPoE secrets (``/rest/ppp/secret``), live sessions (``/rest/ppp/active``),
profiles (``/rest/ppp/profile``), firewall address lists
(``/rest/ip/firewall/address-list``) and DHCP leases (``/rest/ip/dhcp-server/lease``)
in memory and answers the way RouterOS does: JSON in and out, every value a string,
HTTP Basic auth, errors as ``{"error": <status>, "message": ...}``; GET with equality
filters and ``.proplist``, PUT creates, PATCH sets, DELETE removes, POST ``print``.
``tests/network/fake_routeros_api.py`` serves the same state over the classic API.

Controls for tests: ``add_secret``, ``bulk_secrets``, ``add_session``, ``add_profile``,
``add_address``, ``add_lease``, ``fail_next`` (the next requests answer an error),
``delay`` (seconds before every answer), ``hang`` (requests are taken but not
answered until ``recover`` or ``stop``), ``wrong_credentials`` (every request refused
until ``recover``), ``go_down`` / ``come_up`` (nothing listens on the port, nor on the
API fake's, then the same ports answer again, state kept), ``snapshot`` / ``revert``
(a router rebooted with its state reverted), ``requests`` / ``calls(method)`` (a log of
what was asked, in order, once answered; API commands are logged as their REST
equivalent with ``protocol="api"``) and ``arrivals`` (requests received, counted before
any delay: a caller is at the router).
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

TABLES = {
    "ppp/secret": "secrets",
    "ppp/active": "sessions",
    "ppp/profile": "profiles",
    "ip/firewall/address-list": "addresses",
    "ip/dhcp-server/lease": "leases",
}
# What each table's rows may be given (PUT, PATCH); a name unknown there is a 400.
FIELDS = {
    "secrets": {"name", "disabled", "profile", "service", "comment", "password",
                "remote-address", "local-address", "caller-id"},
    "sessions": set(),
    "profiles": {"name", "rate-limit", "comment"},
    "addresses": {"list", "address", "comment", "disabled", "timeout"},
    "leases": {"address", "mac-address", "host-name", "comment", "disabled", "server"},
}
UNIQUE = {"secrets": "name", "profiles": "name"}
BOOLEANS = {"true", "false"}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string, e.g. "/rest/ppp/secret/*1"
    query: dict[str, str]
    body: object
    status: int  # what the fake answered
    protocol: str = "rest"  # or "api": the same request made over the classic API


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeRouterOS:
    def __init__(self, *, user: str = "api", password: str = "router-pass") -> None:
        self.user = user
        self.password = password
        self.delay = 0.0
        self.arrivals = 0
        self.secrets: dict[str, dict[str, str]] = {}
        self.sessions: dict[str, dict[str, str]] = {}
        self.profiles: dict[str, dict[str, str]] = {}
        self.addresses: dict[str, dict[str, str]] = {}
        self.leases: dict[str, dict[str, str]] = {}
        self.refusing = False  # wrong_credentials(): every login refused
        self.hanging = False  # hang(): requests taken, never answered
        self.fronts: list = []  # the FakeRouterOSApi servers in front of this state
        self.requests: list[LoggedRequest] = []
        self._failures: list[tuple[int, str | None, bytes | None]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self.open_connections: set[socket.socket] = set()  # kept alive by HTTP/1.1 clients

    # Lifecycle -------------------------------------------------------------

    def start(self, port: int = 0) -> FakeRouterOS:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, here and on the API fakes in front (held requests end)."""
        self._stopping.set()  # wakes handlers held by ``delay`` or ``hang``
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            connections, self.open_connections = self.open_connections, set()
        for conn in connections:  # a router going down resets what was open
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for front in self.fronts:
            front.stop()

    def go_down(self) -> None:
        """Nothing listens on the ports any more (a connection is refused); state is kept."""
        self.stop()

    def come_up(self) -> None:
        """Listen on the same ports again, with the state it had."""
        self.start(self._port)
        for front in self.fronts:
            front.start(front.port)

    def hold(self) -> bool:
        """Wait out ``delay`` and ``hang`` before answering; False when stopping."""
        if self.delay and self._stopping.wait(self.delay):
            return False
        while self.hanging:
            if self._stopping.wait(0.05):
                return False
        return not self._stopping.is_set()

    @property
    def port(self) -> int:
        assert self._port, "start() the fake first"
        return self._port

    @property
    def url(self) -> str:
        """Base URL including ``/rest``."""
        return f"http://127.0.0.1:{self.port}/rest"

    @property
    def root_url(self) -> str:
        """Base URL without ``/rest``."""
        return f"http://127.0.0.1:{self.port}"

    # Controls --------------------------------------------------------------

    def _new_id(self) -> str:
        with self._lock:
            value = f"*{self._next_id:X}"
            self._next_id += 1
            return value

    def add_secret(
        self, name: str, disabled: bool = False, profile: str = "default", service: str = "pppoe"
    ) -> str:
        ident = self._new_id()
        with self._lock:
            self.secrets[ident] = {
                ".id": ident,
                "name": name,
                "disabled": "true" if disabled else "false",
                "profile": profile,
                "service": service,
                "password": "pppoe-pass",
                "comment": "",
            }
        return ident

    def bulk_secrets(self, count: int, *, prefix: str = "user", profile: str = "default",
                     disabled: bool = False) -> list[str]:
        """``count`` secrets named ``<prefix><n>`` (n from 0), at once; their names."""
        names = [f"{prefix}{n}" for n in range(count)]
        with self._lock:
            for name in names:
                ident = f"*{self._next_id:X}"
                self._next_id += 1
                self.secrets[ident] = {
                    ".id": ident, "name": name, "disabled": "true" if disabled else "false",
                    "profile": profile, "service": "pppoe", "password": "pppoe-pass",
                    "comment": "",
                }
        return names

    def _add(self, attribute: str, row: dict[str, str]) -> str:
        ident = self._new_id()
        with self._lock:
            getattr(self, attribute)[ident] = {".id": ident, **row}
        return ident

    def add_profile(self, name: str, rate_limit: str = "") -> str:
        return self._add("profiles", {"name": name, "rate-limit": rate_limit})

    def add_address(self, list_name: str, address: str, comment: str = "") -> str:
        return self._add("addresses", {"list": list_name, "address": address,
                                       "comment": comment, "disabled": "false",
                                       "dynamic": "false"})

    def add_lease(self, address: str, mac: str, comment: str = "", host_name: str = "",
                  dynamic: bool = False) -> str:
        return self._add("leases", {"address": address, "mac-address": mac,
                                    "host-name": host_name, "comment": comment,
                                    "disabled": "false",
                                    "dynamic": "true" if dynamic else "false"})

    def address_entries(self, list_name: str) -> list[dict[str, str]]:
        with self._lock:
            return [dict(row) for row in self.addresses.values() if row["list"] == list_name]

    def snapshot(self) -> dict:
        """The router's tables as they are now, for ``revert``."""
        with self._lock:
            return copy.deepcopy({name: getattr(self, name) for name in FIELDS})

    def revert(self, snapshot: dict) -> None:
        """Back to ``snapshot``, as a router rebooted without saving what it was told."""
        with self._lock:
            for name, rows in copy.deepcopy(snapshot).items():
                setattr(self, name, rows)

    def hang(self) -> None:
        """Requests are taken and never answered, until ``recover`` or ``stop``."""
        self.hanging = True

    def wrong_credentials(self) -> None:
        """Every request is refused as a wrong login until ``recover``."""
        self.refusing = True

    def add_session(self, name: str) -> str:
        ident = self._new_id()
        with self._lock:
            number = len(self.sessions) + 10
            self.sessions[ident] = {
                ".id": ident,
                "name": name,
                "service": "pppoe",
                "caller-id": f"AA:BB:CC:00:00:{number:02X}",
                "address": f"10.0.0.{number}",
                "uptime": "1h2m3s",
                "encoding": "",
                "radius": "false",
            }
        return ident

    def fail_next(
        self, n: int = 1, status: int = 503, *, method: str | None = None, body: bytes | None = None
    ) -> None:
        """The next ``n`` requests (only those with ``method``, when given) answer ``status``
        with a RouterOS error body, or with ``body`` as it is when given."""
        with self._lock:
            self._failures.extend([(status, method, body)] * n)

    def recover(self) -> None:
        """Failures still queued by ``fail_next`` are dropped; the delay, a hang and
        refused logins end."""
        with self._lock:
            self._failures.clear()
        self.delay = 0.0
        self.refusing = False
        self.hanging = False

    def secret(self, name: str) -> dict[str, str]:
        with self._lock:
            (found,) = [dict(s) for s in self.secrets.values() if s["name"] == name]
        return found

    def sessions_of(self, name: str) -> list[dict[str, str]]:
        with self._lock:
            return [dict(s) for s in self.sessions.values() if s["name"] == name]

    def log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def calls(self, method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if method is None or r.method == method]

    # Request handling (called from the server's threads) -------------------

    def _take_failure(self, method: str) -> tuple[int, bytes | None] | None:
        with self._lock:
            for index, (status, only, body) in enumerate(self._failures):
                if only is None or only == method:
                    del self._failures[index]
                    return status, body
        return None

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return not self.refusing and decoded == f"{self.user}:{self.password}"

    def handle(self, method: str, raw_path: str, headers, raw_body: bytes):
        """Returns (status, payload, raw_bytes_or_None)."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query))
        body: object = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode(errors="replace")

        status, payload, raw = self._answer(method, path, query, headers, body)
        self.log(LoggedRequest(method, path, query, body, status))
        return status, payload, raw

    def _answer(self, method, path, query, headers, body):
        failure = self._take_failure(method)
        if failure is not None:
            status, raw = failure
            return status, _error(status), raw
        if not self._authorized(headers.get("Authorization")):
            return 401, _error(401), None
        if not path.startswith("/rest/"):
            return 404, _error(404), None
        rest = path[len("/rest/") :].rstrip("/")
        for prefix, attribute in TABLES.items():
            if rest == prefix:
                if method == "PUT":
                    return self._create(attribute, body)
                return self._collection(method, attribute, query)
            if rest == prefix + "/print" and method == "POST":
                return self._print(attribute, body)
            if rest.startswith(prefix + "/"):
                return self._item(method, attribute, rest[len(prefix) + 1 :], body)
        return 400, _error(400, "no such command"), None

    def select(self, attribute: str, filters: dict[str, str],
               proplist: list[str] | None = None) -> list[dict[str, str]]:
        """Rows of a table matching every filter, with only ``proplist``'s fields."""
        with self._lock:
            rows = [row for row in getattr(self, attribute).values()
                    if all(row.get(key) == value for key, value in filters.items())]
            if proplist:
                return [{key: row[key] for key in proplist if key in row} for row in rows]
            return [dict(row) for row in rows]

    def create(self, attribute: str, fields: dict) -> tuple[str | None, str]:
        """Add a row; (its id, "") or (None, why it was refused)."""
        problem = self._invalid(attribute, fields)
        if problem:
            return None, problem
        unique = UNIQUE.get(attribute)
        with self._lock:
            table = getattr(self, attribute)
            if unique and any(row.get(unique) == fields.get(unique) for row in table.values()):
                return None, "failure: entry already exists"
            ident = f"*{self._next_id:X}"
            self._next_id += 1
            defaults = {"disabled": "false"} if attribute != "profiles" else {}
            table[ident] = {".id": ident, **defaults, **fields}
        return ident, ""

    def update(self, attribute: str, ident: str, fields: dict) -> tuple[dict | None, str]:
        problem = self._invalid(attribute, fields)
        if problem:
            return None, problem
        with self._lock:
            row = getattr(self, attribute).get(ident)
            if row is None:
                return None, "no such item"
            row.update(fields)
            return dict(row), ""

    def remove(self, attribute: str, ident: str) -> bool:
        with self._lock:
            return getattr(self, attribute).pop(ident, None) is not None

    @staticmethod
    def _invalid(attribute: str, fields) -> str:
        if not isinstance(fields, dict) or not fields:
            return "expected a JSON object"
        for key, value in fields.items():
            if key not in FIELDS[attribute]:
                return f"unknown parameter {key}"
            if not isinstance(value, str):
                return f"value of {key} must be a string"
            if key == "disabled" and value not in BOOLEANS:
                return f"value of disabled out of range: {value}"
        return ""

    def _create(self, attribute, body):
        ident, problem = self.create(attribute, body)
        if ident is None:
            return 400, _error(400, problem), None
        with self._lock:
            return 201, dict(getattr(self, attribute)[ident]), None

    def _print(self, attribute, body):
        query = body.get(".query", []) if isinstance(body, dict) else []
        filters = dict(item.split("=", 1) for item in query if "=" in item)
        proplist = body.get(".proplist") if isinstance(body, dict) else None
        return 200, self.select(attribute, filters, proplist), None

    def _collection(self, method, attribute, query):
        if method != "GET":
            return 400, _error(400, "no such command"), None
        query = dict(query)
        proplist = query.pop(".proplist", None)
        return 200, self.select(attribute, query, proplist.split(",") if proplist else None), None

    def _item(self, method, attribute, ident, body):
        if method == "GET":
            with self._lock:
                row = getattr(self, attribute).get(ident)
            return (200, dict(row), None) if row is not None else (404, _error(404), None)
        if method == "DELETE":
            return (204, None, None) if self.remove(attribute, ident) else (404, _error(404), None)
        if method == "PATCH":
            with self._lock:
                exists = ident in getattr(self, attribute)
            if not exists:
                return 404, _error(404), None
            row, problem = self.update(attribute, ident, body)
            return (200, row, None) if row is not None else (400, _error(400, problem), None)
        return 400, _error(400, "no such command"), None


def _error(status: int, detail: str | None = None) -> dict:
    body = {"error": status, "message": HTTPStatus(status).phrase}
    if detail:
        body["detail"] = detail
    return body


def _handler_for(router: FakeRouterOS):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with router._lock:
                router.open_connections.add(self.connection)

        def finish(self) -> None:
            with router._lock:
                router.open_connections.discard(self.connection)
            super().finish()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            with router._lock:
                router.arrivals += 1
            if not router.hold():
                return  # the fake is shutting down
            status, payload, raw = router.handle(self.command, self.path, self.headers, raw_body)
            if raw is None and payload is not None:
                raw = json.dumps(payload).encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="RouterOS"')
            if raw:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw or b"")))
            self.end_headers()
            if raw:
                self.wfile.write(raw)

        def _safely(self) -> None:
            try:
                self._serve()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _safely

        def log_message(self, format, *args):  # noqa: A002
            pass

    return Handler
