"""The audit trail of money and network actions: who, when, what before and after, and
from which request, kept by django-auditlog in its ``LogEntry`` table.

auditlog writes an entry from the model signals of ``save()`` and ``delete()``;
``QuerySet.update()`` sends none, so the audited writes of the services save rows.
Its middleware gives every entry the request's address and a correlation id; the
actor is set by the services (``acting``), because the API's user is ``request.auth``,
which the middleware, running before authentication, cannot see.
"""

import uuid
from contextlib import contextmanager

from auditlog.cid import correlation_id, set_cid
from auditlog.context import auditlog_value, set_actor, set_extra_data
from auditlog.middleware import AuditlogMiddleware
from auditlog.registry import auditlog
from django.db.models import Q

from core.errors import DATABASE_ERRORS, database_unavailable

# Secrets are never copied into the trail.
_CUSTOMER_SECRETS = ["password", "credentials"]


def register_models() -> None:
    """Called once from the billing app's ``ready``."""
    from billing.models import (
        BillRun,
        Collection,
        ConnectionChange,
        Customer,
        Package,
        Payment,
        ReconciliationRun,
        Router,
        RouterRun,
    )

    auditlog.register(Customer, exclude_fields=["updated_at", *_CUSTOMER_SECRETS])
    auditlog.register(Payment, exclude_fields=["updated_at"])
    auditlog.register(Collection)
    auditlog.register(ConnectionChange)
    auditlog.register(Package, exclude_fields=["updated_at"])
    auditlog.register(BillRun)
    auditlog.register(ReconciliationRun)
    # Its outcome fields change on every sync: the trail keeps what staff set.
    auditlog.register(Router, exclude_fields=[
        "updated_at", "password", "last_sync_at", "last_sync_status", "last_error",
        "consecutive_failures", "drift_count", "drift",
    ])
    auditlog.register(RouterRun, exclude_fields=["result", "last_progress_at"])


class AuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with a correlation id on every request: the client's
    ``X-Correlation-ID`` header, else a new one."""

    def __call__(self, request):
        set_cid(request)
        if correlation_id.get() is None:
            correlation_id.set(uuid.uuid4().hex)
        try:
            # The actor is request.user: a session read, outside any view's error handling.
            extra_data = self.get_extra_data(request)
        except DATABASE_ERRORS as error:
            return database_unavailable(request, error)
        with set_extra_data(context_data=extra_data):
            return self.get_response(request)


@contextmanager
def acting(actor):
    """Entries written inside are by ``actor`` (None: whoever the request had), from the
    request's address. auditlog's contexts do not nest (the inner one leaves the outer
    one dead), so the outer one is put back on the way out."""
    outer = auditlog_value.get(None)
    request_data = {key: (outer or {}).get(key) for key in ("remote_addr", "remote_port")}
    try:
        with set_actor(actor or (outer or {}).get("actor"), **request_data):
            yield
    finally:
        if outer is not None:
            auditlog_value.set(outer)


def customer_history(customer):
    """Every entry about a customer: their row, their payment records and those
    records' ledger lines, their connection changes; newest first."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from billing.models import Collection, ConnectionChange, Customer, Payment

    def about(model, ids) -> Q:
        return Q(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)

    payments = Payment.objects.filter(customer=customer).values("pk")
    return (
        LogEntry.objects.filter(
            Q(content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk)
            | about(Payment, payments)
            | about(Collection, Collection.objects.filter(payment__in=payments).values("pk"))
            | about(ConnectionChange, customer.network_changes.values("pk"))
        )
        .select_related("actor", "content_type")
        .order_by("-timestamp", "-pk")
    )
