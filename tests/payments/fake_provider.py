"""What the fake payment providers share: a threaded HTTP server on 127.0.0.1 with its
lifecycle, and the controls every fake takes: ``delay`` (seconds before every API
answer), ``hang`` / ``recover``, ``fail_next(n, status)`` (the next n API calls answer
that HTTP status), ``report_amount`` (the amount the provider says was paid, when it is
not what was asked), ``calls`` (the API paths answered, in order) and ``arrivals`` (API
calls received, answered or still held)."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The standard library's backlog of 5 refuses connections when many payers arrive
    # at once (the benchmark's hundreds); a provider's real front end does not.
    request_queue_size = 256


class FakeProviderServer:
    def __init__(self) -> None:
        self.delay = 0.0
        self.hanging = False
        self.report_amount: str | None = None
        self.calls: list[str] = []
        self.arrivals = 0
        self._failures: list[int] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    # Lifecycle -------------------------------------------------------------

    def start(self, port: int = 0):
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", port), self.handler())
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def root_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # Controls --------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def recover(self) -> None:
        self.hanging = False

    def hold(self) -> bool:
        """Wait out ``delay`` and ``hang``; False when stopping."""
        with self._lock:
            self.arrivals += 1
        if self.delay and self._stopping.wait(self.delay):
            return False
        while self.hanging:
            if self._stopping.wait(0.05):
                return False
        return not self._stopping.is_set()

    def called(self, path: str) -> int | None:
        """Log an API call; the HTTP status it must fail with, if one is queued."""
        with self._lock:
            self.calls.append(path)
            return self._failures.pop(0) if self._failures else None

    def next_number(self) -> int:
        return next(self._counter)


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def send(self, status: int, body: bytes, content_type: str,
             headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
