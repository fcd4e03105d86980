"""Throttles: 429 ``{"detail"}`` with ``Retry-After`` (api-contract.md, Writes and errors).

Two kinds, both at the rates of ``settings.THROTTLE_RATES`` and both in the shared
cache, so a cache that is down throttles nothing rather than answering 500:

- ``AddressRateThrottle``: ninja's own throttle (``throttle=`` on an operation),
  counting every request of a client address (login, refresh, register).
- Credential failures, counted per login and per client address in fixed windows
  and checked before the password hash (``credentials_check`` / ``credentials_failed``);
  ninja's throttles run after authentication, so they cannot guard Basic. An address
  that has failed in the current window also gets one check at a time.
"""

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from ninja.errors import Throttled
from ninja.throttling import SimpleRateThrottle

from core.cache import CACHE_ERRORS, cache_get, cache_set

logger = logging.getLogger(__name__)

__all__ = ["AddressRateThrottle", "Throttled", "address_credentials_wait", "client_address",
           "credentials_check", "credentials_failed"]

_PREFIX = "throttle:"
# Longer than any password check; a slot left behind by a killed worker expires then.
_SLOT_SECONDS = 10


def client_address(request: HttpRequest) -> str:
    """The client's address: the first X-Forwarded-For hop only behind a trusted proxy."""
    if settings.THROTTLE_BEHIND_PROXY:
        first = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()
        if first:
            return first
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def parse_rate(rate: str) -> tuple[int, int]:
    """``"5/min"`` → (5, 60)."""
    count, _, unit = rate.partition("/")
    return int(count), SimpleRateThrottle._PERIODS[unit]


class _TolerantCache:
    """The cache as ninja's throttle uses it, with a cache that is down as empty."""

    get = staticmethod(cache_get)
    set = staticmethod(cache_set)


class AddressRateThrottle(SimpleRateThrottle):
    """ninja's throttle per client address, at ``THROTTLE_RATES[scope]`` (read on every
    request, so a changed setting applies at once)."""

    cache = _TolerantCache()
    cache_format = _PREFIX + "%(scope)s:%(ident)s"

    def __init__(self, scope: str):
        self.scope = scope
        # ninja keeps a request's key, history and time on the throttle between
        # allow_request() and wait(); one throttle serves every thread of a worker.
        self._state = threading.local()

    key = property(lambda self: self._state.key, lambda self, v: setattr(self._state, "key", v))
    history = property(
        lambda self: self._state.history, lambda self, v: setattr(self._state, "history", v)
    )
    now = property(lambda self: self._state.now, lambda self, v: setattr(self._state, "now", v))

    def allow_request(self, request: HttpRequest) -> bool:
        self.num_requests, self.duration = parse_rate(settings.THROTTLE_RATES[self.scope])
        return super().allow_request(request)

    def get_cache_key(self, request: HttpRequest) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def wait(self) -> float:
        # ninja's own spreads the wait over the requests left and may give none.
        oldest = self.history[-1] if self.history else self.now
        return max(1.0, self.duration - (self.now - oldest))


# Credential failures -----------------------------------------------------------------


def _windows(address: str, login: str) -> list[tuple[str, int, float]]:
    """(cache key, limit, seconds left) of the current window per address and per login."""
    now = time.time()
    found = []
    for scope, ident in (("address", address), ("login", login.strip().lower())):
        limit, period = parse_rate(settings.THROTTLE_RATES[f"credentials_per_{scope}"])
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        window = int(now // period)
        found.append((f"{_PREFIX}cred:{scope}:{digest}:{window}", limit, period - now % period))
    return found


def _exhausted_wait(counts: list[tuple[int, int, float]]) -> int | None:
    """Seconds until every window that has used up its failures is over, or None."""
    waits = [left for count, limit, left in counts if count >= limit]
    return math.ceil(max(waits)) if waits else None


def address_credentials_wait(address: str) -> int | None:
    """Seconds this address stays refused for failed credentials, or None; the address
    half of ``credentials_check``, for refusing a flood before the request is parsed."""
    key, limit, left = _windows(address, "")[0]
    return _exhausted_wait([(cache_get(key) or 0, limit, left)])


@contextmanager
def credentials_check(*, address: str, login: str) -> Iterator[None]:
    """Around a credential check: Throttled (429) while this address or this login has
    used up its failures, or while this address, having failed in this window, already
    has a check running; so a flood from one address holds at most one worker hashing
    instead of all of them at the start of each window."""
    counts = [(cache_get(key) or 0, limit, left) for key, limit, left in _windows(address, login)]
    wait = _exhausted_wait(counts)
    if wait:
        raise Throttled(wait=wait)
    if not counts[0][0]:  # no failure from this address: checks run side by side
        yield
        return
    slot = f"{_PREFIX}cred:running:{hashlib.sha256(address.encode()).hexdigest()[:32]}"
    backend = caches["default"]
    try:
        taken = backend.add(slot, 1, _SLOT_SECONDS)
    except CACHE_ERRORS:
        taken = None  # no cache, no slot: the check runs
    if taken is False:
        raise Throttled(wait=1)
    try:
        yield
    finally:
        if taken:
            try:
                backend.delete(slot)
            except CACHE_ERRORS:
                pass  # it expires on its own


def credentials_failed(*, address: str, login: str) -> None:
    """Count one failed credential check against the address and the login."""
    backend = caches["default"]
    try:
        for key, _, left in _windows(address, login):
            backend.add(key, 0, math.ceil(left) + 1)
            try:
                backend.incr(key)
            except ValueError:  # expired between add and incr: the window is over anyway
                pass
    except CACHE_ERRORS as error:
        logger.warning("Cannot count a failed credential (%s); not throttled", error)
