"""A small fake MikroTik RouterOS v7 REST server, standard library only.

It keeps PPPoE secrets (``/rest/ppp/secret``) and live sessions (``/rest/ppp/active``)
in memory and answers the way RouterOS does: JSON in and out, every value a string,
HTTP Basic auth, errors as ``{"error": <status>, "message": ...}``.

Controls for tests: ``add_secret``, ``add_session``, ``fail_next`` (the next requests
answer an error), ``delay`` (seconds before every answer), ``requests`` (a log
of what was asked, in order, once answered) and ``arrivals`` (requests received, counted
before the delay: a caller is at the router).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

TABLES = {"ppp/secret": "secrets", "ppp/active": "sessions"}
SECRET_FIELDS = {"disabled", "profile", "service", "comment", "password"}
BOOLEANS = {"true", "false"}


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string, e.g. "/rest/ppp/secret/*1"
    query: dict[str, str]
    body: object
    status: int  # what the fake answered


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
        self.requests: list[LoggedRequest] = []
        self._failures: list[tuple[int, str | None, bytes | None]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------

    def start(self) -> FakeRouterOS:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in ``delay``
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

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
        """Failures still queued by ``fail_next`` are dropped; the delay ends for new calls."""
        with self._lock:
            self._failures.clear()
        self.delay = 0.0

    def secret(self, name: str) -> dict[str, str]:
        with self._lock:
            (found,) = [dict(s) for s in self.secrets.values() if s["name"] == name]
        return found

    def sessions_of(self, name: str) -> list[dict[str, str]]:
        with self._lock:
            return [dict(s) for s in self.sessions.values() if s["name"] == name]

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
        return decoded == f"{self.user}:{self.password}"

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
        with self._lock:
            self.requests.append(LoggedRequest(method, path, query, body, status))
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
                return self._collection(method, attribute, query)
            if rest.startswith(prefix + "/"):
                return self._item(method, attribute, rest[len(prefix) + 1 :], body)
        return 400, _error(400, "no such command"), None

    def _collection(self, method, attribute, query):
        if method != "GET":
            return 400, _error(400, "no such command"), None
        with self._lock:
            rows = [
                dict(row)
                for row in getattr(self, attribute).values()
                if all(row.get(key) == value for key, value in query.items())
            ]
        return 200, rows, None

    def _item(self, method, attribute, ident, body):
        with self._lock:
            table = getattr(self, attribute)
            row = table.get(ident)
            if row is None:
                return 404, _error(404), None
            if method == "GET":
                return 200, dict(row), None
            if method == "DELETE":
                del table[ident]
                return 204, None, None
            if method == "PATCH" and attribute == "secrets":
                if not isinstance(body, dict) or not body:
                    return 400, _error(400, "expected a JSON object"), None
                for key, value in body.items():
                    if key not in SECRET_FIELDS:
                        return 400, _error(400, f"unknown parameter {key}"), None
                    if not isinstance(value, str):
                        return 400, _error(400, f"value of {key} must be a string"), None
                    if key == "disabled" and value not in BOOLEANS:
                        return 400, _error(400, f"value of disabled out of range: {value}"), None
                row.update(body)
                return 200, dict(row), None
        return 400, _error(400, "no such command"), None


def _error(status: int, detail: str | None = None) -> dict:
    body = {"error": status, "message": HTTPStatus(status).phrase}
    if detail:
        body["detail"] = detail
    return body


def _handler_for(router: FakeRouterOS):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            with router._lock:
                router.arrivals += 1
            if router.delay and router._stopping.wait(router.delay):
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
