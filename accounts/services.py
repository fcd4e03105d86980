"""Writes on users and the login flow; each rule once, whatever route calls it."""

from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_by_login
from accounts.tokens import InvalidToken, IssuedToken, token_issue, token_user
from core.enums import Status, UserKind
from core.errors import FieldErrors, NotAuthenticated, PermissionDenied, field_error
from core.permissions import require_manageable_kind
from core.throttling import credentials_check, credentials_failed

LOGIN_FAILED = "No active account found with the given credentials"
TOKEN_INVALID = "Token is invalid or expired"
OLD_PASSWORD_WRONG = "Your old password was entered incorrectly. Please enter it again."
SELF_PASSWORD = "Change your own password with POST /users/me/password."

# Fields a user may not change on their own account.
_SELF_PROTECTED = ("kind", "status", "is_staff")


def credentials_user(*, login: str, password: str, address: str) -> User | None:
    """The active user that ``login`` and ``password`` name, or None.

    A login or client address with too many recent failures is Throttled before any
    hash is computed; every other check costs exactly one hash, whether the login
    names no one, an account that is not active, or one whose password is wrong, so
    the time of the answer names no one."""
    with credentials_check(address=address, login=login):
        user = user_by_login(login)
        if user is None:
            make_password(password)
            matches = False
        elif not user.is_active:
            check_password(password, user.password)  # the same cost; nothing upgraded
            matches = False
        else:
            matches = user.check_password(password)
        if not matches:
            credentials_failed(address=address, login=login)
            return None
    return user


def auth_login(
    *, login: str, password: str, address: str
) -> tuple[User, IssuedToken, IssuedToken]:
    user = credentials_user(login=login, password=password, address=address)
    if user is None:
        raise NotAuthenticated(LOGIN_FAILED, message=LOGIN_FAILED)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return (
        user,
        token_issue(user=user, token_type="access"),
        token_issue(user=user, token_type="refresh"),
    )


def auth_refresh(*, refresh_token: str) -> IssuedToken:
    try:
        user = token_user(token=refresh_token, token_type="refresh")
    except InvalidToken as error:
        raise NotAuthenticated(TOKEN_INVALID) from error
    return token_issue(user=user, token_type="access")


def _check_unique(*, phone: str | None, email: str | None, exclude: User | None) -> None:
    others = User.objects.exclude(pk=exclude.pk) if exclude else User.objects.all()
    errors = {}
    if phone and others.filter(phone=phone).exists():
        errors["phone"] = "A user with this phone already exists."
    if email and others.filter(email__iexact=email).exists():
        errors["email"] = "A user with this email already exists."
    if errors:
        raise FieldErrors(errors)


def _check_password(password: str, user: User, field: str = "password") -> None:
    try:
        validate_password(password, user)
    except DjangoValidationError as error:
        raise FieldErrors({field: error.messages}) from error


def _save(user: User) -> User:
    """Save, turning a lost race on a unique column into the same 400 as the pre-check."""
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as error:
        _check_unique(phone=user.phone, email=user.email, exclude=user if user.pk else None)
        raise FieldErrors({"non_field_errors": "This user conflicts with another one."}) from error
    return user


def user_create(*, actor: User, data: dict[str, Any]) -> User:
    require_manageable_kind(actor, data["kind"])
    _check_unique(phone=data["phone"], email=data["email"], exclude=None)
    password = data.pop("password", None)
    user = User(**data)
    if password:
        _check_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    return _save(user)


def user_update(*, actor: User, user: User, data: dict[str, Any]) -> User:
    """Set the fields present in ``data``; on their own account a user keeps their
    kind, status and staff flag."""
    data = dict(data)
    if user.pk == actor.pk:
        for name in _SELF_PROTECTED:
            data.pop(name, None)
        if data.get("password"):  # only with the old password, never through a token alone
            raise field_error("password", SELF_PASSWORD)
    else:
        require_manageable_kind(actor, user.kind)
        if "kind" in data:
            require_manageable_kind(actor, data["kind"])
    _check_unique(phone=data.get("phone"), email=data.get("email"), exclude=user)
    password = data.pop("password", None)
    for name, value in data.items():
        setattr(user, name, value)
    if password:
        _check_password(password, user)
        user.set_password(password)
    return _save(user)


def password_change(*, user: User, old_password: str, new_password: str, address: str) -> None:
    """A user's own password change; every token and Basic verdict issued before it ends
    (both carry a fingerprint of the password hash)."""
    with credentials_check(address=address, login=user.phone):
        if not user.check_password(old_password):
            credentials_failed(address=address, login=user.phone)
            raise field_error("old_password", OLD_PASSWORD_WRONG)
    _check_password(new_password, user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password", "updated_at"])


def user_remove(*, actor: User, user: User) -> None:
    """Soft delete: the user is REMOVED, left out of lists, and cannot log in."""
    if user.pk == actor.pk:
        raise PermissionDenied("You cannot delete your own account.")
    require_manageable_kind(actor, user.kind)
    user.status = Status.REMOVED
    user.save(update_fields=["status", "updated_at"])


def user_register(*, data: dict[str, Any]) -> User:
    password, confirm = data.pop("password"), data.pop("confirm_password")
    if password != confirm:
        raise field_error("confirm_password", "The two password fields didn't match.")
    _check_unique(phone=data["phone"], email=data["email"], exclude=None)
    user = User(**data, kind=UserKind.OTHER, status=Status.ACTIVE)
    _check_password(password, user)
    user.set_password(password)
    return _save(user)
