"""The operators' back office: search and filters everywhere, the ledger read-only,
payment records voided rather than deleted."""

import json

from auditlog.admin import LogEntryAdmin
from auditlog.mixins import AuditlogHistoryAdminMixin
from auditlog.models import LogEntry
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing.audit import customer_history
from billing.models import (
    BillRun,
    BillRunChunk,
    Collection,
    ConnectionChange,
    Customer,
    Notification,
    OnlinePayment,
    OnlinePaymentEvent,
    Package,
    Payment,
    ReconciliationRun,
    Router,
    RouterAction,
    RouterRun,
)
from billing.pay_links import pay_link
from billing.providers import enabled_providers
from billing.router_runs import INTERNAL_KEYS, router_run_request
from core.enums import Status
from core.permissions import allows


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the task queue writes: for reading, never for editing by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """A record's lines shown beside it, never edited there."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = ["name", "speed_mbps", "price", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "description"]
    readonly_fields = ["uid", "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # soft delete: set the status to REMOVED


# The audit trail is read, never changed: no add, change or delete, cascades included.
admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class AuditEntryAdmin(LogEntryAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    show_auditlog_history_link = True
    auditlog_history_per_page = 50
    list_display = [
        "name",
        "phone",
        "username",
        "package",
        "connection_type",
        "is_active",
        "is_free",
        "status",
        "network_confirmed_at",
        "router",
    ]
    list_filter = ["status", "is_active", "is_free", "connection_type", "package", "router"]
    search_fields = ["name", "phone", "email", "username", "nid", "ip_address"]
    list_select_related = ["package", "router"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "uid",
        "created_at",
        "updated_at",
        "balance",
        "network_confirmed_at",
        "network_confirmed_active",
        "network_last_error",
        "pay_page_link",
    ]

    def has_delete_permission(self, request, obj=None):
        return False  # soft delete: set the status to REMOVED

    @admin.display(description="Pay link")
    def pay_page_link(self, customer):
        """The link the customer pays their bills at (staff send it on request)."""
        if customer.pk is None or not enabled_providers():
            return "No online payment provider is switched on."
        link = pay_link(customer)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', link, link)

    def auditlog_history_view(self, request, object_id, extra_context=None):
        """The customer's whole history: their row, records, ledger lines, connection."""
        customer = self.get_object(request, object_id)
        if customer is None or not self.has_view_permission(request, customer):
            raise PermissionDenied
        page = self.get_paginator(request, customer_history(customer), 50).get_page(
            request.GET.get("p", 1)
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"History: {customer}",
            "module_name": "Customers",
            "page_range": page.paginator.get_elided_page_range(page.number),
            "page_var": "p",
            "pagination_required": page.paginator.num_pages > 1,
            "object": customer,
            "opts": self.model._meta,
            "log_entries": page,
        }
        return TemplateResponse(request, self.auditlog_history_template, context)


class CollectionInline(ReadOnlyInline):
    model = Collection
    fields = [
        "kind",
        "amount",
        "payment_method",
        "transaction_id",
        "payment_date",
        "recorded_by",
        "created_at",
        "voided_at",
        "source",
        "online_payment",
        "note",
    ]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "customer",
        "billing_month",
        "billing_year",
        "bill_amount",
        "amount",
        "paid",
        "payment_method",
        "transaction_id",
        "voided_at",
    ]
    list_filter = [
        "paid",
        "billing_year",
        "billing_month",
        "payment_method",
        ("voided_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["customer__name", "customer__phone", "transaction_id"]
    list_select_related = ["customer", "entry_by"]
    raw_id_fields = ["customer", "entry_by", "voided_by"]
    # Money moves only through the API's services, which keep the ledger.
    readonly_fields = [
        "uid",
        "amount",
        "paid",
        "bill_amount",
        "voided_at",
        "voided_by",
        "created_at",
        "updated_at",
    ]
    inlines = [CollectionInline]
    actions = ["void_selected"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Void the selected payment records")
    def void_selected(self, request, queryset):
        from billing.services import payment_void

        count = 0
        for payment in queryset.filter(voided_at__isnull=True):
            payment_void(payment=payment, actor=request.user)
            count += 1
        self.message_user(
            request, f"Voided {count} record(s) at {timezone.localtime():%H:%M}.", messages.SUCCESS
        )


@admin.register(Collection)
class CollectionAdmin(ReadOnlyAdmin):
    list_display = [
        "payment",
        "kind",
        "amount",
        "payment_method",
        "transaction_id",
        "payment_date",
        "recorded_by",
        "voided_at",
    ]
    list_filter = ["kind", "payment_method"]
    search_fields = ["transaction_id", "payment__customer__name"]
    list_select_related = ["payment__customer", "recorded_by"]

    def has_change_permission(self, request, obj=None):
        return False  # the ledger is append-only: lines are only ever viewed


@admin.register(ConnectionChange)
class ConnectionChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "customer",
        "enable",
        "reason",
        "created_at",
        "attempts",
        "confirmed_at",
        "superseded",
        "last_error",
    ]
    list_filter = ["enable", "reason", "superseded", ("confirmed_at", admin.EmptyFieldListFilter)]
    search_fields = ["customer__name", "customer__username", "task_id"]
    list_select_related = ["customer"]


class BillRunChunkInline(ReadOnlyInline):
    model = BillRunChunk
    fields = [
        "number",
        "first_customer_id",
        "last_customer_id",
        "created_count",
        "dispatched_at",
        "done_at",
    ]


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyAdmin):
    list_display = [
        "billing_month",
        "billing_year",
        "state",
        "progress",
        "billable_count",
        "created_count",
        "skipped_count",
        "missing_count",
        "requested_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "billing_year", "billing_month"]
    search_fields = ["task_id", "uid"]
    list_select_related = ["requested_by"]
    inlines = [BillRunChunkInline]

    @admin.display(description="chunks done")
    def progress(self, run):
        return f"{run.chunks_done}/{run.chunks_total}"


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "trigger",
        "state",
        "checked_count",
        "fixed_count",
        "credits_moved",
        "credit_amount",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state"]
    search_fields = ["task_id", "trigger"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "channel",
        "customer",
        "state",
        "attempts",
        "created_at",
        "sent_at",
        "last_error",
    ]
    list_filter = ["state", "event", "channel"]
    search_fields = ["event_key", "customer__name", "customer__phone"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer", "payment"]


# Routers ---------------------------------------------------------------------


class RouterForm(forms.ModelForm):
    """The password is typed, never shown back; left blank on a change, it is kept."""

    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False, max_length=200,
        help_text="Stored encrypted. Leave blank to keep the current one.",
    )

    class Meta:
        model = Router
        fields = ["name", "kind", "host", "port", "use_tls", "verify_tls", "username",
                  "password", "is_enabled", "calls_per_second", "timeout_seconds", "status"]

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not password and not self.instance.pk:
            raise forms.ValidationError("A new router needs its password.")
        return password

    def clean_status(self):
        # The API's rule for a soft delete: not while customers are on the router.
        status = self.cleaned_data["status"]
        if status == Status.REMOVED and self.instance.pk:
            on_it = self.instance.customers.exclude(status=Status.REMOVED).count()
            if on_it:
                raise forms.ValidationError(
                    f"This router has {on_it} customer(s); move them first."
                )
        return status

    def save(self, commit=True):
        router = super().save(commit=False)
        if not self.cleaned_data["password"] and router.pk:
            router.password = Router.objects.get(pk=router.pk).password
        if commit:
            router.save()
        return router


LAST_RUNS_SHOWN = 10
DRIFT_ROWS_SHOWN = 500


@admin.register(Router)
class RouterAdmin(admin.ModelAdmin):
    form = RouterForm
    list_display = ["name", "kind", "host", "is_enabled", "last_sync_at", "last_sync_status",
                    "drift_count", "consecutive_failures", "status"]
    list_filter = ["kind", "is_enabled", "last_sync_status", "status"]
    search_fields = ["name", "host"]
    readonly_fields = ["uid", "created_at", "updated_at", "last_sync_at", "last_sync_status",
                       "last_error", "consecutive_failures", "drift_count", "drift_shown",
                       "last_runs"]
    actions = ["sync_now", "import_dry_run", "import_confirmed"]

    @admin.display(description="drift (last sync)")
    def drift_shown(self, router):
        rows = router.drift[:DRIFT_ROWS_SHOWN]
        more = len(router.drift) - len(rows)
        return format_html("<pre>{}</pre>{}", json.dumps(rows, indent=1),
                           f"… and {more} more" if more > 0 else "")

    @admin.display(description=f"last {LAST_RUNS_SHOWN} runs")
    def last_runs(self, router):
        # Syncs run every few minutes: an inline would list thousands of them.
        runs = router.runs.order_by("-created_at", "-id")[:LAST_RUNS_SHOWN]
        lines = format_html_join(
            "", "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            ((reverse("admin:billing_routerrun_change", args=[run.pk]),
              f"{run.kind}{' (dry run)' if run.dry_run else ''}", run.trigger, run.state,
              timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M"),
              json.dumps({k: v for k, v in run.result.items() if k not in INTERNAL_KEYS})[:500],
              run.error[:200])
             for run in runs),
        )
        if not lines:
            return "No runs yet."
        return format_html(
            "<table><tr><th>run</th><th>trigger</th><th>state</th><th>created</th>"
            "<th>result</th><th>error</th></tr>{}</table>", lines,
        )

    def has_delete_permission(self, request, obj=None):
        return False  # soft delete: set the status to REMOVED

    def _request_runs(self, request, routers, kind, *, dry_run=False):
        for router in routers:
            if not router.is_enabled or router.status == Status.REMOVED:
                self.message_user(request, f"{router}: switched off, not run.", messages.WARNING)
                continue
            run = router_run_request(router=router, kind=kind, requested_by=request.user,
                                     trigger="ADMIN", dry_run=dry_run)
            what = "import (dry run)" if kind == RouterRun.Kind.IMPORT and run.dry_run else (
                "import" if kind == RouterRun.Kind.IMPORT else "sync")
            self.message_user(request, f"{router}: {what} {run.state.lower()}, task {run.task_id}.")

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset):
        self._request_runs(request, queryset, RouterRun.Kind.SYNC)

    @admin.action(description="Import (dry run)")
    def import_dry_run(self, request, queryset):
        self._request_runs(request, queryset, RouterRun.Kind.IMPORT, dry_run=True)

    @admin.action(description="Import (confirm)")
    def import_confirmed(self, request, queryset):
        self._request_runs(request, queryset, RouterRun.Kind.IMPORT, dry_run=False)


@admin.register(RouterRun)
class RouterRunAdmin(ReadOnlyAdmin):
    list_display = ["router", "kind", "dry_run", "trigger", "state", "created_at",
                    "finished_at", "error"]
    list_filter = ["kind", "state", "dry_run", "router"]
    search_fields = ["task_id", "router__name"]
    list_select_related = ["router"]
    ordering = ["-created_at", "-id"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RouterAction)
class RouterActionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "router", "customer", "action", "target", "outcome", "error"]
    list_filter = ["action", "outcome", "router"]
    search_fields = ["target", "customer__name", "customer__username"]
    list_select_related = ["router", "customer"]
    raw_id_fields = ["customer", "change", "run"]
    ordering = ["-created_at", "-id"]

    def has_change_permission(self, request, obj=None):
        return False


class OnlinePaymentEventInline(ReadOnlyInline):
    model = OnlinePaymentEvent
    fields = ["created_at", "kind", "state_before", "state_after", "data"]
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OnlinePayment)
class OnlinePaymentAdmin(ReadOnlyAdmin):
    """Customers' own payments through a provider, with every answer the provider gave.
    Only the provider's confirmation moves one; staff may refund a paid one."""

    list_display = ["created_at", "customer", "provider", "state", "amount",
                    "refunded_amount", "refund_unanswered", "transaction_id", "invoice_number"]
    list_filter = ["state", "provider"]
    search_fields = ["customer__name", "customer__phone", "transaction_id", "invoice_number",
                     "provider_payment_id"]
    list_select_related = ["customer"]
    inlines = [OnlinePaymentEventInline]
    actions = ["refund_in_full", "unanswered_refund_made", "unanswered_refund_not_made"]

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Refund the selected payments in full (through the provider)")
    def refund_in_full(self, request, queryset):
        from billing.online_payments import ProviderDown, online_payment_refund
        from core.errors import FieldErrors

        if not allows(request.user, "online_payments.refund"):
            raise PermissionDenied
        for online in queryset:
            try:
                online_payment_refund(online_payment=online, amount=None, actor=request.user)
            except (FieldErrors, ProviderDown) as error:
                detail = error.body if isinstance(error, FieldErrors) else str(error)
                self.message_user(request, f"{online}: not refunded: {detail}", messages.ERROR)
            else:
                self.message_user(request, f"{online}: refunded.", messages.SUCCESS)

    @admin.action(description="Unanswered refund: checked, the provider made it")
    def unanswered_refund_made(self, request, queryset):
        self._settle_unanswered(request, queryset, made=True)

    @admin.action(description="Unanswered refund: checked, the provider did not make it")
    def unanswered_refund_not_made(self, request, queryset):
        self._settle_unanswered(request, queryset, made=False)

    def _settle_unanswered(self, request, queryset, *, made: bool) -> None:
        from billing.online_payments import online_payment_refund_settle
        from core.errors import FieldErrors

        if not allows(request.user, "online_payments.refund"):
            raise PermissionDenied
        for online in queryset:
            try:
                online_payment_refund_settle(online_payment=online, made=made,
                                             actor=request.user)
            except FieldErrors as error:
                self.message_user(request, f"{online}: {error.body}", messages.ERROR)
            else:
                self.message_user(request, f"{online}: settled.", messages.SUCCESS)
