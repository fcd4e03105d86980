"""Authentication for every protected route: Bearer (JWT) or HTTP Basic.

Django's PBKDF2 check costs about 0.3 s, which would hold a Basic client to a
few requests a second. A verified Basic credential is therefore remembered in
the cache, keyed by a keyed hash of the credential (never the password), and
the verdict only stands while the user is active, the login still names them
(phone and email can change) and their password hash is the one that was
verified; it expires after ``BASIC_AUTH_CACHE_SECONDS``.

Each process also keeps the last verdicts in memory for a few seconds, which
spares the shared cache's round trip on a busy client; the same checks apply.
A cache that is down is no cache: the password is verified every time.

Credentials that are verified go through ``accounts.services.credentials_user``, as
a login does: the same throttle on failures, the same cost for every failure.
"""

import hashlib
import hmac
import threading

from cachetools import TTLCache
from django.conf import settings
from ninja.security import HttpBasicAuth, HttpBearer

from accounts.models import User
from accounts.selectors import is_login_of
from accounts.services import credentials_user
from accounts.tokens import InvalidToken, password_fingerprint, token_user
from core.cache import cache_delete, cache_get, cache_set
from core.throttling import client_address

_BASIC_CACHE_PREFIX = "auth:basic:"
_LOCAL_VERDICT_SECONDS = 10
_local_verdicts: TTLCache = TTLCache(maxsize=1024, ttl=_LOCAL_VERDICT_SECONDS)
_local_lock = threading.Lock()


class BearerAuth(HttpBearer):
    def __call__(self, request) -> User | None:
        # ninja's own check logs the whole header (a Basic password) when DEBUG is on.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token: str) -> User | None:
        try:
            return token_user(token=token, token_type="access")
        except InvalidToken:
            return None


class BasicAuth(HttpBasicAuth):
    def authenticate(self, request, username: str, password: str) -> User | None:
        return basic_credentials_user(
            login=username, password=password, address=client_address(request)
        )


def _credential_key(login: str, password: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"{login}\0{password}".encode(), hashlib.sha256
    ).hexdigest()
    return _BASIC_CACHE_PREFIX + digest


def basic_credentials_user(*, login: str, password: str, address: str) -> User | None:
    """The active user these credentials belong to, verifying the password at most once
    per ``BASIC_AUTH_CACHE_SECONDS`` for as long as the login and password stay the same."""
    key = _credential_key(login, password)
    with _local_lock:
        remembered = _local_verdicts.get(key)
    if remembered is None:
        remembered = cache_get(key)
        if remembered is not None:
            # Not refreshed on a local hit: the memo never outlives the shared verdict
            # by more than its own few seconds.
            with _local_lock:
                _local_verdicts[key] = remembered
    if remembered is not None:
        user_id, fingerprint = remembered
        user = User.objects.filter(pk=user_id).first()
        if (
            user is not None
            and user.is_active
            and is_login_of(user, login)
            and hmac.compare_digest(fingerprint, password_fingerprint(user))
        ):
            return user
        cache_delete(key)
        with _local_lock:
            _local_verdicts.pop(key, None)

    user = credentials_user(login=login, password=password, address=address)
    if user is not None:
        cache_set(key, (user.pk, password_fingerprint(user)), settings.BASIC_AUTH_CACHE_SECONDS)
    return user


api_auth = [BearerAuth(), BasicAuth()]
