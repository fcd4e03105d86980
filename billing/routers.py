"""Routers as records: create, change and remove them (the API's and the admin's)."""

from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import User
from billing.audit import acting
from billing.models import Router
from billing.services import refuse_while_customers_on
from core.enums import Status
from core.errors import NON_FIELD_ERRORS, field_error


def router_save(*, router: Router | None = None, data: dict[str, Any], actor: User) -> Router:
    """Create or update a router. The password is required on create and kept when an
    update leaves it out (or sends it empty)."""
    data = dict(data)
    password = data.pop("password", None)
    router = router or Router()
    if not router.pk and not password:
        raise field_error("password", "This field is required.")
    if _name_taken(data.get("name", router.name), exclude=router if router.pk else None):
        raise field_error("name", "A router with this name already exists.")
    for name, value in data.items():
        setattr(router, name, value)
    if password:
        router.password = password
    try:
        with acting(actor), transaction.atomic():
            router.save()
    except IntegrityError as error:
        raise field_error("name", "A router with this name already exists.") from error
    return router


def _name_taken(name: str, *, exclude: Router | None) -> bool:
    routers = Router.objects.exclude(status=Status.REMOVED).filter(name__iexact=name)
    if exclude is not None:
        routers = routers.exclude(pk=exclude.pk)
    return routers.exists()


def router_remove(*, router: Router, actor: User) -> None:
    """Soft delete, refused while customers that are not REMOVED are on the router."""
    with acting(actor), transaction.atomic():
        router = Router.objects.select_for_update().get(pk=router.pk)
        refuse_while_customers_on(router, "router")
        router.status = Status.REMOVED
        router.is_enabled = False
        router.save(update_fields=["status", "is_enabled", "updated_at"])


def router_runnable(router: Router) -> None:
    """A sync or an import needs a router switched on."""
    if not router.is_enabled:
        raise field_error(NON_FIELD_ERRORS, "This router is switched off; switch it on first.")
