"""A small fake SMS gateway (an HTTP server on a free local port), standard library only.

It takes what ``billing.messaging.HttpSmsBackend`` sends (a JSON POST with an
``Idempotency-Key`` header) and counts every request per key *as it arrives*, before any
``delay``: a sender killed while waiting for the answer has still delivered its text.

Controls: ``honour_key`` (a repeated key is answered 200 and not delivered again),
``delay`` (seconds before every answer), ``answer_next(status, times)`` (the next
requests get that status and deliver nothing), ``on_request`` (called with each request
as it arrives, in the server's thread). Readings: ``requests`` (every request,
in order), ``received()`` / ``delivered()`` (per key), ``repeats()``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class SmsRequest:
    key: str | None
    to: str
    message: str
    auth: str | None
    status: int  # what the fake answered
    delivered: bool


class FakeSmsGateway:
    def __init__(self, *, honour_key: bool = False, delay: float = 0.0,
                 on_request: Callable[[SmsRequest], None] | None = None) -> None:
        self.honour_key = honour_key
        self.delay = delay
        self.on_request = on_request
        self.requests: list[SmsRequest] = []
        self._answers: list[int] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeSmsGateway:
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

    def __enter__(self) -> FakeSmsGateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/sms/send"

    def answer_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._answers.extend([status] * times)

    def snapshot(self) -> list[SmsRequest]:
        with self._lock:
            return list(self.requests)

    def received(self) -> Counter:
        """Requests per idempotency key."""
        return Counter(request.key for request in self.snapshot())

    def delivered(self) -> Counter:
        """Texts that reached a phone, per idempotency key."""
        return Counter(request.key for request in self.snapshot() if request.delivered)

    def repeats(self) -> dict[str | None, int]:
        """Keys delivered more than once, with how many times."""
        return {key: n for key, n in self.delivered().items() if n > 1}

    def _take(self, key: str | None, body: dict, auth: str | None) -> int:
        with self._lock:
            status = self._answers.pop(0) if self._answers else 200
            seen = any(r.key == key and r.delivered for r in self.requests)
            delivered = status == 200 and not (self.honour_key and seen)
            request = SmsRequest(
                key=key, to=str(body.get("to")), message=str(body.get("message")), auth=auth,
                status=status, delivered=delivered,
            )
            self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        return status


def _handler_for(gateway: FakeSmsGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = gateway._take(self.headers.get("Idempotency-Key"),
                                   json.loads(raw or b"{}"), self.headers.get("Authorization"))
            if gateway.delay:
                gateway._stopping.wait(gateway.delay)
            answer = json.dumps({"ok": status == 200}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the sender is gone (killed mid-request)

        def log_message(self, format, *args):  # noqa: A002
            pass

    return Handler
