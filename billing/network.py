"""Switching a customer's connection on and off at the router.

A backend is anything with ``set_enabled(username=..., enabled=...)`` that
raises ``NetworkError`` when the router did not confirm the change. Chosen by
``NETWORK_BACKEND``: ``logging`` (default) or ``mikrotik`` (RouterOS v7 REST).
"""

import logging
import time
from typing import Protocol

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


class NetworkError(Exception):
    """The router did not confirm the change (unreachable, slow, or answered an error)."""


class NetworkBackend(Protocol):
    def set_enabled(self, *, username: str, enabled: bool) -> None: ...


class LoggingBackend:
    """Writes the change to the log; for installations without a router API."""

    def set_enabled(self, *, username: str, enabled: bool) -> None:
        logger.info("network: %s %s", "enable" if enabled else "disable", username)


class MikroTikBackend:
    """RouterOS v7 REST: the customer's PPPoE secret is enabled or disabled, and
    their live session dropped when disabling. ``timeout`` bounds each call and
    ``deadline`` all the calls of one ``set_enabled`` together."""

    def __init__(
        self, *, url: str, user: str, password: str, verify_tls: bool, timeout: float,
        deadline: float | None = None,
    ):
        self.base = url.rstrip("/")
        if not self.base.endswith("/rest"):
            self.base += "/rest"
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.session.verify = verify_tls
        self.timeout = timeout
        self.deadline = deadline
        self._ends_at = float("inf")

    def _call(self, method: str, path: str, **kwargs):
        # The caller's lease on the customer lasts as long as the attempt may: no call
        # starts, or waits, past the attempt's deadline.
        left = self._ends_at - time.monotonic()
        if left <= 0:
            raise NetworkError(f"router too slow: no answer within {self.deadline}s")
        try:
            response = self.session.request(
                method, f"{self.base}{path}", timeout=min(self.timeout, left), **kwargs
            )
        except requests.RequestException as error:
            raise NetworkError(f"router unreachable: {error}") from error
        if response.status_code >= 400:
            raise NetworkError(f"router answered {response.status_code}: {response.text[:200]}")
        try:
            return response.json() if response.content else None
        except ValueError as error:
            raise NetworkError(f"router answered something that is not JSON: {error}") from error

    def set_enabled(self, *, username: str, enabled: bool) -> None:
        if self.deadline is not None:
            self._ends_at = time.monotonic() + self.deadline
        secrets = self._call("GET", "/ppp/secret", params={"name": username}) or []
        if not secrets:
            raise NetworkError(f"no PPPoE secret named {username!r} on the router")
        secret = secrets[0]
        wanted = "false" if enabled else "true"
        if secret.get("disabled") != wanted:
            self._call("PATCH", f"/ppp/secret/{secret['.id']}", json={"disabled": wanted})
        if not enabled:
            for session in self._call("GET", "/ppp/active", params={"name": username}) or []:
                self._call("DELETE", f"/ppp/active/{session['.id']}")


def network_backend() -> NetworkBackend:
    if settings.NETWORK_BACKEND == "mikrotik":
        return MikroTikBackend(
            url=settings.MIKROTIK_URL,
            user=settings.MIKROTIK_USER,
            password=settings.MIKROTIK_PASSWORD,
            verify_tls=settings.MIKROTIK_VERIFY_TLS,
            timeout=settings.MIKROTIK_TIMEOUT_SECONDS,
            deadline=settings.NETWORK_ATTEMPT_SECONDS,
        )
    return LoggingBackend()
