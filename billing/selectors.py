"""Reads: each returns a QuerySet with its joins already chosen (no N+1)."""

import hashlib
from decimal import Decimal

from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum

from accounts.models import User
from billing.models import PERIOD_ORDER, ZERO, Customer, OnlinePayment, Package, Payment, Router
from core.cache import cache_get, cache_set
from core.enums import PaymentMethod, Status, UserKind
from core.listing import nested_values
from core.schemas import local_iso
from core.timeutils import business_month


def package_list() -> QuerySet[Package]:
    # Meta.ordering is dropped from GROUP BY queries: newest first is asked for explicitly.
    return (
        Package.objects.exclude(status=Status.REMOVED)
        .annotate(customer_count=Count("customers", filter=~Q(customers__status=Status.REMOVED)))
        .order_by(*Package._meta.ordering)
    )


def router_list() -> QuerySet[Router]:
    """Routers not REMOVED, with how many customers not REMOVED are on each."""
    return (
        Router.objects.exclude(status=Status.REMOVED)
        .annotate(customer_count=Count("customers", filter=~Q(customers__status=Status.REMOVED)))
        .order_by(*Router._meta.ordering)
    )


def router_health() -> dict[str, int]:
    """Routers switched on, and those among them whose last sync failed."""
    enabled = Router.objects.filter(is_enabled=True).exclude(status=Status.REMOVED)
    return enabled.aggregate(
        enabled=Count("pk"), failing=Count("pk", filter=Q(last_sync_status="FAILED"))
    )


def customer_list(*, viewer: User) -> QuerySet[Customer]:
    """Customers not REMOVED that ``viewer`` may see: a CUSTOMER sees only their own."""
    customers = Customer.objects.exclude(status=Status.REMOVED).select_related("package", "router")
    if viewer.kind == UserKind.CUSTOMER:
        customers = customers.filter(user=viewer)
    return customers


# The columns of CustomerList and its PackageBase.
_CUSTOMER_PAGE_FIELDS = (
    "id", "uid", "name", "email", "phone", "address", "nid", "is_free",
    "connection_start_date", "is_active", "ip_address", "mac_address", "username", "password",
    "connection_type", "credentials", "status", "balance",
    *(f"package__{name}" for name in ("id", "uid", "name", "speed_mbps", "price", "description")),
    "router__id", "router__uid", "router__name",
)


def customer_page(*, viewer: User) -> QuerySet:
    """``customer_list`` as rows of the list shape, for list pages."""
    return nested_values(customer_list(viewer=viewer), *_CUSTOMER_PAGE_FIELDS)


def customer_detail_list(*, viewer: User) -> QuerySet[Customer]:
    """``customer_list`` with the linked user account, for the detail shape."""
    return customer_list(viewer=viewer).select_related("user")


def payment_list(*, viewer: User) -> QuerySet[Payment]:
    """Records not voided that ``viewer`` may see: a CUSTOMER sees only their own."""
    payments = Payment.objects.filter(voided_at__isnull=True).select_related("customer", "entry_by")
    if viewer.kind == UserKind.CUSTOMER:
        payments = payments.filter(customer__user=viewer)
    return payments


# The columns of PaymentList, its CustomerBase and UserLite.
_PAYMENT_PAGE_FIELDS = (
    "id", "uid", "customer_id", "bill_amount", "amount", "billing_month", "billing_year",
    "payment_method", "paid", "transaction_id", "payment_date", "note", "created_at",
    "updated_at",
    *(
        f"customer__{name}"
        for name in ("id", "uid", "name", "email", "phone", "address", "nid", "is_free")
    ),
    *(f"entry_by__{name}" for name in ("id", "uid", "first_name", "last_name", "phone", "email")),
)


def payment_page(*, viewer: User) -> QuerySet:
    """``payment_list`` as rows of the list shape, for list pages."""
    return nested_values(payment_list(viewer=viewer), *_PAYMENT_PAGE_FIELDS)


def own_bill_page(*, viewer: User, customer: Customer) -> QuerySet:
    """A customer's own unpaid live records, oldest month first (``/me/bills``)."""
    return (payment_page(viewer=viewer).filter(customer=customer, paid=False, voided_at=None)
            .order_by(*PERIOD_ORDER))


def payment_detail(*, viewer: User, uid) -> Payment:
    return payment_list(viewer=viewer).prefetch_related("collections__recorded_by").get(uid=uid)


DASHBOARD_CACHE_SECONDS = 60


def dashboard_figures() -> dict:
    """The dashboard, recomputed only when a package, customer or payment record has
    changed since (every write moves its ``updated_at``): its aggregates read every
    record, which is too slow to repeat on every request of a busy ISP."""
    year, month = business_month()
    stamp = tuple(
        model.objects.aggregate(last=Max("updated_at"))["last"]
        for model in (Package, Customer, Payment)
    )
    key = "dashboard:" + hashlib.sha256(repr((year, month, stamp)).encode()).hexdigest()
    figures = cache_get(key)
    if figures is None:
        figures = _dashboard_compute(year, month)
        cache_set(key, figures, DASHBOARD_CACHE_SECONDS)
    return figures


def _dashboard_compute(year: int, month: str) -> dict:
    customers = Customer.objects.exclude(status=Status.REMOVED).aggregate(
        total=Count("id"), active=Count("id", filter=Q(is_active=True))
    )
    live = Payment.objects.filter(voided_at__isnull=True)
    this_month = Q(billing_year=year, billing_month=month)
    payments = live.aggregate(
        paid_count=Count("id", filter=Q(paid=True)),
        revenue=Sum("amount", filter=Q(paid=True)),
        pending_count=Count("id", filter=Q(paid=False)),
        month_paid=Count("id", filter=this_month & Q(paid=True)),
        month_billed=Sum("bill_amount", filter=this_month),
        month_collected=Sum("amount", filter=this_month),
    )
    by_method = dict(
        live.filter(this_month, amount__gt=0)
        .values_list("payment_method")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    billed = payments["month_billed"] or ZERO
    collected = payments["month_collected"] or ZERO
    return {
        "total_customers": customers["total"],
        "active_customers": customers["active"],
        "total_packages": Package.objects.exclude(status=Status.REMOVED).count(),
        "total_payments": payments["paid_count"],
        "total_revenue": payments["revenue"] or ZERO,
        "pending_payments": payments["pending_count"],
        "current_month_payments": payments["month_paid"],
        "current_month": month,
        "current_year": year,
        "current_month_billed": billed,
        "current_month_collected": collected,
        "current_month_due": max(billed - collected, ZERO),
        "collected_by_method": {
            method: by_method.get(method, Decimal("0")) for method in PaymentMethod.values
        },
    }


def task_status(task_id: str) -> dict:
    """A task's state, from the record it works on when there is one, else Celery's
    result backend. Unknown ids are PENDING, as Celery reports them."""
    from django_celery_results.models import TaskResult

    from billing.bills import bill_run_progress, bill_run_result
    from billing.models import BillRun, ConnectionChange, ReconciliationRun, RouterRun
    from billing.reconciliation import reconciliation_progress, reconciliation_result
    from billing.router_runs import router_run_result

    run = BillRun.objects.filter(task_id=task_id).first()
    if run is not None:
        return {
            "task_id": task_id,
            "status": _celery_state(run.state, run.started_at),
            "result": bill_run_result(run),
            "progress": bill_run_progress(run),
        }
    reconciliation = ReconciliationRun.objects.filter(task_id=task_id).first()
    if reconciliation is not None:
        return {
            "task_id": task_id,
            "status": _celery_state(reconciliation.state, True),
            "result": reconciliation_result(reconciliation),
            "progress": reconciliation_progress(reconciliation),
        }
    router_run = RouterRun.objects.select_related("router").filter(task_id=task_id).first()
    if router_run is not None:
        return {
            "task_id": task_id,
            "status": _celery_state(router_run.state, router_run.started_at),
            "result": router_run_result(router_run),
            "progress": None,
        }
    change = ConnectionChange.objects.filter(task_id=task_id).first()
    if change is not None:
        state = "SUCCESS" if change.confirmed_at else ("RETRY" if change.last_error else "PENDING")
        return {
            "task_id": task_id,
            "status": state,
            "progress": None,
            "result": {
                "username": change.customer.username,
                "enable": change.enable,
                "confirmed_at": local_iso(change.confirmed_at) if change.confirmed_at else None,
                "attempts": change.attempts,
                "superseded": change.superseded,
                "last_error": change.last_error,
            },
        }
    stored = TaskResult.objects.filter(task_id=task_id).first()
    if stored is None:
        raise TaskResult.DoesNotExist
    return {
        "task_id": task_id,
        "status": stored.status,
        "result": _json_or_text(stored.result),
        "progress": None,
    }


def _celery_state(state: str, started) -> str:
    if state == "RUNNING":
        return "STARTED"
    if state == "FAILED":
        return "FAILURE"
    return state


def _json_or_text(value):
    import json

    try:
        return json.loads(value) if value else None
    except (TypeError, ValueError):
        return value


def online_payment_list(*, viewer: User) -> QuerySet[OnlinePayment]:
    """Online payments with their customer and the uids of the records they pay (a
    CUSTOMER sees only their own), newest first."""
    found = OnlinePayment.objects.select_related("customer").prefetch_related(
        Prefetch("payments", queryset=Payment.objects.only("uid").order_by("pk"))
    )
    if viewer.kind == UserKind.CUSTOMER:
        found = found.filter(customer__user=viewer)
    return found
