import re
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import AliasPath, field_validator

from core.enums import Gender, Status, UserKind
from core.schemas import FileUrl, LocalDateTime, OutSchema

_PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def normalize_phone(value: str) -> str:
    """Phones are stored without spaces, dashes or brackets ("+880 1711-000000" is
    "+8801711000000")."""
    return re.sub(r"[\s\-().]", "", value or "")


def _valid_phone(value: str) -> str:
    phone = normalize_phone(value)
    if not _PHONE.match(phone):
        raise ValueError(
            "Enter a valid phone number (6 to 15 digits, optionally with a leading +)."
        )
    return phone


def _valid_email(value: str) -> str:
    value = (value or "").strip()
    if value:
        try:
            validate_email(value)
        except DjangoValidationError as error:
            raise ValueError("Enter a valid email address.") from error
    return value


# Output shapes ---------------------------------------------------------------


class UserLite(OutSchema):
    id: int
    uid: UUID
    first_name: str
    last_name: str
    phone: str
    email: str


class UserList(UserLite):
    gender: Gender
    kind: UserKind
    image: FileUrl


class UserDetail(UserList):
    status: Status
    is_staff: bool
    created_at: LocalDateTime
    updated_at: LocalDateTime


class Me(UserDetail):
    # The linked customer record, if any (a missing one reads as absent).
    customer_uid: UUID | None = Field(None, validation_alias=AliasPath("customer", "uid"))


# Input shapes ----------------------------------------------------------------


class LoginIn(Schema):
    phone: str = Field(..., description="The user's phone number or email.", min_length=1)
    password: str = Field(..., min_length=1)


class TokenPair(Schema):
    access_token: str
    refresh_token: str
    access_token_exp: int
    refresh_token_exp: int
    user: Me


class RefreshIn(Schema):
    refresh_token: str = Field(..., min_length=1)


class AccessToken(Schema):
    access_token: str
    access_token_exp: int


class ErrorDetail(Schema):
    detail: str


class LoginError(Schema):
    detail: str
    message: str


class _UserFields(Schema):
    first_name: str = Field("", max_length=150)
    last_name: str = Field("", max_length=150)
    phone: str
    email: str = Field("", max_length=254)
    gender: Gender = Gender.UNKNOWN

    _phone = field_validator("phone")(_valid_phone)
    _email = field_validator("email")(_valid_email)


class UserWrite(_UserFields):
    """``POST /users`` and ``PUT /users/{uid}``: UserList fields, status, is_staff, password."""

    kind: UserKind = UserKind.OTHER
    status: Status = Status.ACTIVE
    is_staff: bool = False
    password: str | None = None


class MeUpdate(_UserFields):
    """``PUT /users/me``: kind, status and is_staff are not the user's own to change, and
    a password only through ``POST /users/me/password`` (a non-empty one is a 400)."""

    password: str | None = None


class PasswordChangeIn(Schema):
    old_password: str = Field(..., min_length=1)
    new_password: str = Field(..., min_length=1)


class RegisterIn(_UserFields):
    """``email`` may be blank or left out, as the original allowed."""

    password: str
    confirm_password: str
