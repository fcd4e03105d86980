from django.db.models import Q, QuerySet

from accounts.models import User
from core.enums import Status


def user_by_login(login: str) -> User | None:
    """The user whose phone, or email (in any case), is ``login``."""
    login = (login or "").strip()
    if not login or "\x00" in login:  # names no one (and PostgreSQL refuses NUL)
        return None
    lookup = Q(email__iexact=login) if "@" in login else Q(phone=login)
    return User.objects.filter(lookup).first()


def is_login_of(user: User, login: str) -> bool:
    """Whether ``login`` still names ``user`` (the lookup of ``user_by_login``)."""
    login = (login or "").strip()
    if "@" in login:
        return bool(user.email) and user.email.lower() == login.lower()
    return user.phone == login


def user_list() -> QuerySet[User]:
    """Users that are not soft-deleted."""
    return User.objects.exclude(status=Status.REMOVED)


def user_get(uid) -> User:
    return user_list().get(uid=uid)
