"""Reads: each returns a QuerySet with its joins already chosen (no N+1)."""

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from accounts.models import User
from billing.models import ZERO, Customer, Package, Payment
from core.enums import PaymentMethod, Status, UserKind
from core.timeutils import business_month


def package_list() -> QuerySet[Package]:
    return Package.objects.exclude(status=Status.REMOVED).annotate(
        customer_count=Count("customers", filter=~Q(customers__status=Status.REMOVED))
    )


def customer_list(*, viewer: User) -> QuerySet[Customer]:
    """Customers not REMOVED that ``viewer`` may see: a CUSTOMER sees only their own."""
    customers = Customer.objects.exclude(status=Status.REMOVED).select_related("package", "user")
    if viewer.kind == UserKind.CUSTOMER:
        customers = customers.filter(user=viewer)
    return customers


def payment_list(*, viewer: User) -> QuerySet[Payment]:
    """Records not voided that ``viewer`` may see: a CUSTOMER sees only their own."""
    payments = Payment.objects.filter(voided_at__isnull=True).select_related(
        "customer", "entry_by"
    )
    if viewer.kind == UserKind.CUSTOMER:
        payments = payments.filter(customer__user=viewer)
    return payments


def payment_detail(*, viewer: User, uid) -> Payment:
    return (
        payment_list(viewer=viewer)
        .prefetch_related("collections__recorded_by")
        .get(uid=uid)
    )


def dashboard_figures() -> dict:
    year, month = business_month()
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
