"""Who may do what: the contract's Roles table, in this one place.

A route calls ``require(request.auth, "payments.void")``; anything not allowed
is 403. Which *records* a CUSTOMER sees is a selector's business (404 for
anyone else's), not a role rule.
"""

from core.enums import UserKind
from core.errors import PermissionDenied

_ADMINS = {UserKind.SUPER_ADMIN, UserKind.ADMIN}
_MANAGERS = _ADMINS | {UserKind.MANAGER}
_STAFF = _MANAGERS | {UserKind.STAFF}

ROLES: dict[str, set[str]] = {
    "users.read": _STAFF,
    "users.write": _MANAGERS,
    "users.delete": _MANAGERS,
    "packages.write": _MANAGERS,
    "packages.delete": _ADMINS,
    "customers.read": _STAFF | {UserKind.CUSTOMER},
    "customers.create": _STAFF,
    "customers.update": _MANAGERS,
    "customers.delete": _MANAGERS,
    "customers.toggle": _MANAGERS,
    "payments.read": _STAFF | {UserKind.CUSTOMER},
    "payments.create": _STAFF,
    "payments.update": _STAFF,
    "payments.void": _MANAGERS,
    "bills.generate": _MANAGERS,
    "tasks.read": _MANAGERS,
    "dashboard.read": _STAFF,
    "routers.manage": _ADMINS,
    "online_payments.read": _MANAGERS,
    "online_payments.refund": _ADMINS,
    "bills.pay_own": {UserKind.CUSTOMER},
}

# The kinds of user each kind may create, change or delete.
MANAGEABLE_KINDS: dict[str, set[str]] = {
    UserKind.SUPER_ADMIN: set(UserKind),
    UserKind.ADMIN: set(UserKind) - {UserKind.SUPER_ADMIN},
    UserKind.MANAGER: {UserKind.STAFF, UserKind.CUSTOMER, UserKind.OTHER},
}


def allows(user, permission: str) -> bool:
    return user.kind in ROLES[permission]


def require(user, permission: str) -> None:
    if not allows(user, permission):
        raise PermissionDenied()


def require_manageable_kind(user, kind: str) -> None:
    if kind not in MANAGEABLE_KINDS.get(user.kind, set()):
        raise PermissionDenied(f"You may not manage users of kind {kind}.")
