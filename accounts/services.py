"""Writes on users and the login flow; each rule once, whatever route calls it."""

from typing import Any

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

LOGIN_FAILED = "No active account found with the given credentials"
TOKEN_INVALID = "Token is invalid or expired"

# Fields a user may not change on their own account.
_SELF_PROTECTED = ("kind", "status", "is_staff")


def auth_login(*, login: str, password: str) -> tuple[User, IssuedToken, IssuedToken]:
    user = user_by_login(login)
    if user is None:
        User().set_password(password)  # as long as a real check: timing names no one
        raise NotAuthenticated(LOGIN_FAILED, message=LOGIN_FAILED)
    if not user.is_active or not user.check_password(password):
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
