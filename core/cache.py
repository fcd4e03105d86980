"""The shared cache, used so that a cache that is down is no cache at all.

Everything kept in the cache (list counts, the dashboard, Basic verdicts) can be
recomputed, so an unreachable cache server only makes a request slower, never a
500: ``cache_get`` answers a miss, ``cache_set`` and ``cache_delete`` do nothing.
After a failure the cache is left alone for ``RETRY_AFTER_SECONDS`` (per cache
connection, that is per thread), so a server that times out costs one timeout
now and then rather than one per call.
"""

import logging
import time
from typing import Any
from weakref import WeakKeyDictionary

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5.0
# What a cache server that is down raises: redis-py's errors, or the socket's own.
CACHE_ERRORS = (RedisError, OSError)

_down_until: WeakKeyDictionary[BaseCache, float] = WeakKeyDictionary()


def _available() -> BaseCache | None:
    backend = caches[DEFAULT_CACHE_ALIAS]
    return None if _down_until.get(backend, 0.0) > time.monotonic() else backend


def _failed(backend: BaseCache, operation: str, key: str, error: Exception) -> None:
    _down_until[backend] = time.monotonic() + RETRY_AFTER_SECONDS
    logger.warning(
        "Cache %s of %r failed (%s: %s); working without the cache for %.0f s",
        operation, key, type(error).__name__, error, RETRY_AFTER_SECONDS,
    )


def cache_get(key: str, default: Any = None) -> Any:
    """The cached value, or ``default`` when there is none or the cache is down."""
    backend = _available()
    if backend is None:
        return default
    try:
        return backend.get(key, default)
    except CACHE_ERRORS as error:
        _failed(backend, "get", key, error)
        return default


def cache_set(key: str, value: Any, timeout: float | None) -> None:
    """Remember ``value`` for ``timeout`` seconds, unless the cache is down."""
    backend = _available()
    if backend is None:
        return
    try:
        backend.set(key, value, timeout)
    except CACHE_ERRORS as error:
        _failed(backend, "set", key, error)


def cache_delete(key: str) -> None:
    """Forget ``key``, unless the cache is down (its entry then expires on its own)."""
    backend = _available()
    if backend is None:
        return
    try:
        backend.delete(key)
    except CACHE_ERRORS as error:
        _failed(backend, "delete", key, error)


def cache_incr(key: str, timeout: float) -> int | None:
    """Add one to the counter ``key`` (made with ``timeout`` when missing) and return it;
    None when the cache is down."""
    backend = _available()
    if backend is None:
        return None
    try:
        backend.add(key, 0, timeout)
        return backend.incr(key)
    except ValueError:  # expired between the add and the incr
        return cache_incr(key, timeout)
    except CACHE_ERRORS as error:
        _failed(backend, "incr", key, error)
        return None
