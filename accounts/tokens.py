"""JSON Web Tokens for the staff app: an access token and a refresh token.

Each token carries a fingerprint of the user's password hash, so changing the
password invalidates every token issued before the change.
"""

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt
from django.conf import settings
from django.utils import timezone

from accounts.models import User

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]


class InvalidToken(Exception):
    """The token is malformed, expired, of the wrong type, or no longer valid for its user."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int  # Unix timestamp


def password_fingerprint(user: User) -> str:
    """A keyed digest of the stored password hash; changes whenever the password does."""
    key = settings.JWT_SIGNING_KEY.encode()
    return hmac.new(key, user.password.encode(), hashlib.sha256).hexdigest()[:32]


def token_issue(*, user: User, token_type: TokenType) -> IssuedToken:
    lifetime = (
        settings.JWT_ACCESS_TOKEN_LIFETIME
        if token_type == "access"
        else settings.JWT_REFRESH_TOKEN_LIFETIME
    )
    now = timezone.now()
    expires_at = int((now + lifetime).timestamp())
    payload = {
        "sub": str(user.pk),
        "type": token_type,
        "iat": int(now.timestamp()),
        "exp": expires_at,
        "jti": uuid.uuid4().hex,
        "pwd": password_fingerprint(user),
    }
    return IssuedToken(jwt.encode(payload, settings.JWT_SIGNING_KEY, ALGORITHM), expires_at)


def token_user(*, token: str, token_type: TokenType) -> User:
    """The active user a valid token of ``token_type`` belongs to, or InvalidToken."""
    try:
        payload = jwt.decode(
            token,
            settings.JWT_SIGNING_KEY,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "type", "exp", "pwd"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from error
    if payload["type"] != token_type:
        raise InvalidToken(f"Expected an {token_type} token.")
    try:
        user = User.objects.get(pk=int(payload["sub"]))
    except (User.DoesNotExist, ValueError, TypeError) as error:
        raise InvalidToken("Unknown user.") from error
    if not user.is_active:
        raise InvalidToken("User is not active.")
    if not hmac.compare_digest(str(payload["pwd"]), password_fingerprint(user)):
        raise InvalidToken("The password has changed since this token was issued.")
    return user
