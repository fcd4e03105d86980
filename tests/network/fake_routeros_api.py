"""The classic RouterOS API (TCP, port 8728 on a real router) in front of a
``FakeRouterOS``'s state: the same tables, credentials, delay, failures and downtime.

The wire format as MikroTik's API manual gives it: each word is its length (1 to 5
bytes, the high bits saying how many) and its bytes; a sentence is words ending with a
word of length 0. A command is a sentence whose first word is its path
(``/ppp/secret/print``); attribute words are ``=name=value``, query words
``?name=value``; replies are ``!re`` (one row), ``!done`` (``=ret=<id>`` after an
``add``), ``!trap`` (``=message=...``) and ``!fatal``. Login is the post-6.43 one:
``/login`` with ``=name=`` and ``=password=``.
"""

from __future__ import annotations

import socket
import threading

from tests.network.fake_routeros import TABLES, FakeRouterOS, LoggedRequest

COMMANDS = {f"/{path}": path for path in TABLES}
# Each command logged as the REST request that does the same, so a test can count
# ``calls("PATCH")`` whatever the protocol.
REST_METHODS = {"print": "GET", "add": "PUT", "set": "PATCH", "remove": "DELETE"}


def encode_word(word: str) -> bytes:
    data = word.encode()
    length = len(data)
    if length < 0x80:
        prefix = bytes([length])
    elif length < 0x4000:
        prefix = (length | 0x8000).to_bytes(2, "big")
    elif length < 0x200000:
        prefix = (length | 0xC00000).to_bytes(3, "big")
    elif length < 0x10000000:
        prefix = (length | 0xE0000000).to_bytes(4, "big")
    else:
        prefix = b"\xf0" + length.to_bytes(4, "big")
    return prefix + data


def sentence(*words: str) -> bytes:
    return b"".join(encode_word(word) for word in words) + b"\x00"


def trap(message: str) -> bytes:
    return sentence("!trap", f"=message={message}") + sentence("!done")


class FakeRouterOSApi:
    """Serves ``router``'s state; ``router.go_down()`` / ``come_up()`` / ``stop()`` take
    this server down and up with it."""

    def __init__(self, router: FakeRouterOS) -> None:
        self.router = router
        self._listener: socket.socket | None = None
        self._port = 0
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        router.fronts.append(self)

    @property
    def port(self) -> int:
        assert self._port, "start() the fake first"
        return self._port

    def start(self, port: int = 0) -> FakeRouterOSApi:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        self._listener, self._port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # The protocol ------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        router = self.router
        logged_in = False
        try:
            while True:
                words = self._read_sentence(conn)
                if words is None:
                    return
                if not words:
                    continue
                with router._lock:
                    router.arrivals += 1
                if not router.hold():
                    return
                command, rest = words[0], words[1:]
                if command == "/login":
                    logged_in = self._login(conn, _attributes(rest))
                    continue
                if not logged_in or router.refusing:
                    conn.sendall(sentence("!fatal", "not logged in"))
                    return
                conn.sendall(self._answer(command, rest))
        except OSError:
            return
        finally:
            conn.close()

    def _login(self, conn: socket.socket, attrs: dict[str, str]) -> bool:
        router = self.router
        accepted = (not router.refusing and attrs.get("name") == router.user
                    and attrs.get("password") == router.password)
        router.log(LoggedRequest("LOGIN", "/login", {}, {"name": attrs.get("name", "")},
                                 200 if accepted else 401, protocol="api"))
        conn.sendall(sentence("!done") if accepted
                     else trap("invalid user name or password (6)"))
        return accepted

    def _answer(self, command: str, words: list[str]) -> bytes:
        prefix, _, verb = command.rpartition("/")
        table = COMMANDS.get(prefix)
        method = REST_METHODS.get(verb)
        if table is None or method is None:
            return trap("no such command prefix")
        attrs = _attributes(words)
        filters = dict(word[1:].split("=", 1) for word in words if word.startswith("?"))
        ident = attrs.pop(".id", "")
        proplist = attrs.pop(".proplist", "")
        reply, status = self._run(verb, TABLES[table], attrs, filters, ident, proplist)
        path = f"/rest/{table}/{ident}" if ident else f"/rest/{table}"
        query = {**filters, ".proplist": proplist} if proplist else filters
        self.router.log(LoggedRequest(method, path, query, attrs or None, status,
                                      protocol="api"))
        return reply

    def _run(self, verb, attribute, attrs, filters, ident, proplist) -> tuple[bytes, int]:
        router = self.router
        failure = router._take_failure(REST_METHODS[verb])
        if failure is not None:
            return trap(f"failure {failure[0]}"), failure[0]
        if verb == "print":
            rows = router.select(attribute, filters, proplist.split(",") if proplist else None)
            return b"".join(sentence("!re", *(f"={k}={v}" for k, v in row.items()))
                            for row in rows) + sentence("!done"), 200
        if verb == "add":
            created, problem = router.create(attribute, attrs)
            if created is None:
                return trap(problem), 400
            return sentence("!done", f"=ret={created}"), 200
        if verb == "set":
            row, problem = router.update(attribute, ident, attrs)
            return (sentence("!done"), 200) if row is not None else (trap(problem), 400)
        if not router.remove(attribute, ident):
            return trap("no such item"), 400
        return sentence("!done"), 200

    @staticmethod
    def _read_sentence(conn: socket.socket) -> list[str] | None:
        words = []
        while True:
            length = _read_length(conn)
            if length is None:
                return None
            if length == 0:
                return words
            words.append(_read_exactly(conn, length).decode())


def _attributes(words: list[str]) -> dict[str, str]:
    return dict(word[1:].split("=", 1) for word in words if word.startswith("="))


def _read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _read_length(conn: socket.socket) -> int | None:
    first = conn.recv(1)
    if not first:
        return None
    byte = first[0]
    if byte < 0x80:
        return byte
    if byte < 0xC0:
        return ((byte & 0x3F) << 8) | _read_exactly(conn, 1)[0]
    if byte < 0xE0:
        return ((byte & 0x1F) << 16) | int.from_bytes(_read_exactly(conn, 2), "big")
    if byte < 0xF0:
        return ((byte & 0x0F) << 24) | int.from_bytes(_read_exactly(conn, 3), "big")
    return int.from_bytes(_read_exactly(conn, 4), "big")

