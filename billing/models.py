"""Packages, customers, their monthly payment records and the ledger of money on them."""

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from encrypted_fields.fields import EncryptedCharField

from core.enums import (
    BillingMonth,
    ConnectionType,
    OnlineProvider,
    OnlineState,
    PaymentMethod,
    RouterKind,
    Status,
)
from core.listing import ordered_by
from core.timeutils import FIRST_YEAR, LAST_YEAR
from core.validators import validate_json_numbers

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def money_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=12, decimal_places=2, **kwargs)


class TimeStamped(models.Model):
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Not indexed alone: each list's Meta.indexes pairs it with the tie-breaker (ordered_by).
    created_at = models.DateTimeField(auto_now_add=True)
    # Indexed: cached list counts and the dashboard are keyed by the latest change.
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True


class Package(TimeStamped):
    name = models.CharField(max_length=150)
    speed_mbps = models.PositiveIntegerField()
    price = money_field()
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    router_profile = models.CharField(
        "PPPoE profile", max_length=64, blank=True, default="",
        help_text="The router's PPPoE profile for this package's speed; blank: the package's name.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [ordered_by("created_at", name="package_created_idx")]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), condition=~Q(status=Status.REMOVED), name="package_name_unique_live"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="package_price_not_negative"),
            models.CheckConstraint(condition=Q(speed_mbps__gte=1), name="package_speed_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.speed_mbps} Mbps, {self.price})"

    @property
    def profile_name(self) -> str:
        """The PPPoE profile its customers' secrets carry on every router."""
        return self.router_profile or self.name


class Router(TimeStamped):
    """A router (NAS) whose customers' connections we enforce."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=RouterKind.choices,
                            default=RouterKind.ROUTEROS_REST)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the protocol's own (REST 443/80, API 8729/8728)."
    )
    use_tls = models.BooleanField(default=True)
    verify_tls = models.BooleanField(default=True)
    username = models.CharField(max_length=100)
    # Fernet, with a key derived from SECRET_KEY and SALT_KEY (both from the environment).
    password = EncryptedCharField(max_length=200)
    is_enabled = models.BooleanField(default=True)
    calls_per_second = models.PositiveIntegerField(default=20)
    timeout_seconds = models.FloatField(default=5.0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # What its last sync found (kept up to date by billing.router_sync).
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=10, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    drift_count = models.PositiveIntegerField(default=0)
    drift = models.JSONField(
        default=list, blank=True,
        help_text="The last sync's drift: customers that differ, and unowned secrets.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [ordered_by("created_at", name="router_created_idx")]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), condition=~Q(status=Status.REMOVED), name="router_name_unique_live"
            ),
            models.CheckConstraint(
                condition=Q(calls_per_second__gte=1), name="router_calls_per_second_positive"
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0) & Q(timeout_seconds__lte=120),
                name="router_timeout_sane",
            ),
            models.CheckConstraint(
                condition=Q(port__isnull=True) | (Q(port__gte=1) & Q(port__lte=65535)),
                name="router_port_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Customer(TimeStamped):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=20, blank=True, default="")
    address = models.TextField(blank=True, default="")
    nid = models.CharField("national ID", max_length=30, blank=True, default="")
    is_free = models.BooleanField(default=False, help_text="Never billed; takes no payments.")
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="customers")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="customer",
    )
    connection_start_date = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(default=True, help_text="The connection is enabled.")
    ip_address = models.CharField(max_length=45, blank=True, default="")
    mac_address = models.CharField(max_length=17, blank=True, default="")
    username = models.CharField("PPPoE username", max_length=64, blank=True, default="")
    password = models.CharField("PPPoE password", max_length=128, blank=True, default="")
    connection_type = models.CharField(
        max_length=10, choices=ConnectionType.choices, default=ConnectionType.DHCP
    )
    credentials = models.JSONField(default=dict, blank=True, validators=[validate_json_numbers])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    balance = money_field(
        default=ZERO, help_text="Credit carried forward from overpayments, not yet applied."
    )
    # What the router last confirmed (see billing.services.network).
    network_confirmed_at = models.DateTimeField(null=True, blank=True)
    network_confirmed_active = models.BooleanField(null=True, blank=True)
    network_last_error = models.TextField(blank=True, default="")
    router = models.ForeignKey(
        Router, on_delete=models.PROTECT, null=True, blank=True, related_name="customers",
        help_text="Where its connection is enforced; empty: nothing to enforce.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "is_active", "is_free"], name="customer_billable_idx"),
            ordered_by("created_at", name="customer_created_idx"),
            ordered_by("name", name="customer_name_order_idx"),
            ordered_by("phone", name="customer_phone_order_idx"),
            ordered_by("username", name="customer_username_order_idx"),
            ordered_by("connection_start_date", name="customer_start_order_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["phone"],
                condition=~Q(status=Status.REMOVED) & ~Q(phone=""),
                name="customer_phone_unique_live",
            ),
            models.UniqueConstraint(
                Lower("email"),
                condition=~Q(status=Status.REMOVED) & ~Q(email=""),
                name="customer_email_unique_live",
            ),
            models.UniqueConstraint(
                fields=["username"],
                condition=~Q(status=Status.REMOVED) & ~Q(username=""),
                name="customer_username_unique_live",
            ),
            models.CheckConstraint(
                condition=Q(balance__gte=0), name="customer_balance_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Payment(TimeStamped):
    """A customer's bill for one month and what was collected on it."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    billing_year = models.PositiveSmallIntegerField()
    billing_month = models.CharField(max_length=9, choices=BillingMonth.choices)
    bill_amount = money_field()
    amount = money_field(default=ZERO, help_text="Always the sum of the record's collections.")
    waived = models.BooleanField(default=False, help_text="Staff marked it paid.")
    paid = models.BooleanField(default=False)
    payment_method = models.CharField(
        max_length=20, choices=PaymentMethod.choices, default=PaymentMethod.OTHER
    )
    transaction_id = models.CharField(max_length=100, blank=True, default="")
    payment_date = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, default="")
    entry_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who last recorded money.",
    )
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["billing_year", "billing_month", "paid"], name="payment_month_paid_idx"
            ),
            ordered_by("created_at", name="payment_created_idx"),
            # A month's records, newest first: the list's most used filter.
            ordered_by("billing_year", "billing_month", name="payment_month_order_idx"),
            ordered_by("updated_at", name="payment_updated_order_idx"),
            ordered_by("payment_date", name="payment_date_order_idx"),
            ordered_by("amount", name="payment_amount_order_idx"),
            ordered_by("bill_amount", name="payment_bill_order_idx"),
            ordered_by("billing_year", name="payment_year_order_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "billing_year", "billing_month"],
                condition=Q(voided_at__isnull=True),
                name="payment_one_live_per_customer_month",
            ),
            models.CheckConstraint(
                condition=Q(bill_amount__gte=0), name="payment_bill_not_negative"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(billing_year__gte=FIRST_YEAR) & Q(billing_year__lte=LAST_YEAR),
                name="payment_year_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer} {self.billing_month} {self.billing_year}"

    @property
    def period(self) -> tuple[int, int]:
        """(year, month number): the order of a customer's months (``PERIOD_ORDER`` in SQL)."""
        return self.billing_year, BillingMonth(self.billing_month).number

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None


# A customer's months oldest first, in SQL (``Payment.period`` in Python).
PERIOD_ORDER = (
    "billing_year",
    models.Case(*(models.When(billing_month=month, then=models.Value(month.number))
                  for month in BillingMonth)),
    "id",
)


class Collection(models.Model):
    """One money movement on a payment record. Append-only: corrections are new lines."""

    class Kind(models.TextChoices):
        COLLECTION = "COLLECTION"
        ADJUSTMENT = "ADJUSTMENT"
        # Surplus moved between a customer's records (and their balance) by reconciliation.
        CREDIT_IN = "CREDIT_IN"
        CREDIT_OUT = "CREDIT_OUT"
        # Shows a corrected line cancelled; voided from the start, it never counts.
        REVERSAL = "REVERSAL"
        # Money given back through the provider it came by (negative).
        REFUND = "REFUND"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="collections")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.COLLECTION)
    amount = money_field()
    payment_method = models.CharField(max_length=20, choices=PaymentMethod.choices)
    transaction_id = models.CharField(max_length=100, blank=True, default="")
    payment_date = models.DateTimeField()
    note = models.TextField(blank=True, default="")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Where the line's money comes from: a carried CREDIT_IN's CREDIT_OUT (none: from the
    # balance), the line a credit reversal or a correction cancels.
    source = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="derived"
    )
    # The customer's own payment through a provider that brought (or refunded) the money.
    online_payment = models.ForeignKey(
        "OnlinePayment", on_delete=models.PROTECT, null=True, blank=True,
        related_name="collections",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the record is voided or the line corrected, which frees its transaction id.
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # An online payment spread over several records carries its transaction id on
            # each of their lines; OnlinePayment makes that id count once.
            models.UniqueConstraint(
                fields=["payment_method", "transaction_id"],
                condition=~Q(transaction_id="") & Q(voided_at__isnull=True)
                & Q(online_payment__isnull=True),
                name="collection_trxid_unique_per_method",
            ),
            # An online payment's money lands on a record once, however often it is confirmed.
            models.UniqueConstraint(
                fields=["online_payment", "payment"],
                condition=Q(kind="COLLECTION") & Q(online_payment__isnull=False),
                name="collection_online_once_per_record",
            ),
            models.CheckConstraint(
                condition=~Q(kind="REFUND") | (Q(amount__lt=0) & Q(online_payment__isnull=False)),
                name="collection_refund_negative_online",
            ),
            models.CheckConstraint(
                condition=~Q(kind="COLLECTION") | Q(amount__gt=0),
                name="collection_amount_positive",
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="collection_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on {self.payment}"


class OnlinePayment(TimeStamped):
    """A customer paying their bills through a provider: one attempt, from the checkout
    it opens to the provider's confirmation. See ``billing.online_payments``."""

    Provider = OnlineProvider
    State = OnlineState

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="online_payments")
    payments = models.ManyToManyField(Payment, related_name="online_payments", blank=True,
                                      help_text="The bill records it pays.")
    provider = models.CharField(max_length=12, choices=OnlineProvider.choices)
    state = models.CharField(max_length=12, choices=OnlineState.choices,
                             default=OnlineState.CREATED)
    amount = money_field()
    currency = models.CharField(max_length=3, default="BDT")
    # What we call it at the provider (bKash's merchantInvoiceNumber).
    invoice_number = models.CharField(max_length=40, unique=True)
    provider_payment_id = models.CharField(max_length=100, blank=True, default="")
    transaction_id = models.CharField(max_length=100, blank=True, default="")
    redirect_url = models.TextField(blank=True, default="")
    # Refunds asked for (made, or awaiting the provider's answer).
    refunded_amount = money_field(default=ZERO)
    # Of those, the refund the provider never answered: it may have been made. Held (so no
    # one refunds it again) until a person checks with the provider and settles it.
    refund_unanswered = money_field(default=ZERO)
    error = models.TextField(blank=True, default="")
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # Until then the customer may still finish at the provider; then the sweep asks it.
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            ordered_by("created_at", name="online_created_order_idx"),
            models.Index(fields=["state", "updated_at"], name="online_state_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_payment_id"],
                condition=~Q(provider_payment_id=""), name="online_provider_payment_once",
            ),
            models.UniqueConstraint(
                fields=["provider", "transaction_id"],
                condition=~Q(transaction_id=""), name="online_transaction_once",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="online_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=models.F("amount")),
                name="online_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(refund_unanswered__gte=0)
                & Q(refund_unanswered__lte=models.F("refunded_amount")),
                name="online_unanswered_within_refunded",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["SUCCEEDED", "REFUNDED"]) | ~Q(transaction_id=""),
                name="online_paid_has_transaction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.amount} {self.invoice_number}"

    @property
    def payment_uids(self) -> list[uuid.UUID]:
        """The records it pays (from the prefetch, where the caller made one)."""
        return [payment.uid for payment in self.payments.all()]


class OnlinePaymentEvent(models.Model):
    """Append-only: every provider answer and callback an online payment saw, for audit."""

    online_payment = models.ForeignKey(OnlinePayment, on_delete=models.PROTECT,
                                       related_name="events")
    kind = models.CharField(max_length=20)  # CREATE, CALLBACK, EXECUTE, QUERY, WEBHOOK, ...
    state_before = models.CharField(max_length=12, blank=True, default="")
    state_after = models.CharField(max_length=12, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.state_before}->{self.state_after}"


class ConnectionChange(models.Model):
    """A change of a customer's ``is_active``, to be carried out on the router."""

    class Reason(models.TextChoices):
        TOGGLE = "TOGGLE"
        UPDATE = "UPDATE"
        PAYMENT = "PAYMENT"
        REMOVED = "REMOVED"
        AUTO_SUSPEND = "AUTO_SUSPEND"
        PACKAGE = "PACKAGE"  # the package (its profile) changed
        SYNC = "SYNC"  # a router sync found the router differing from the database

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="network_changes")
    enable = models.BooleanField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    task_id = models.CharField(max_length=64, default="", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    superseded = models.BooleanField(default=False, help_text="A newer change replaced it.")
    last_error = models.TextField(blank=True, default="")
    # One live delivery chain per change: a delivery runs only once this is due, and the
    # sweep resends only what is long overdue (the chain died). Empty: due since created.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An attempt is at the router until then: the customer's other changes wait for it
    # (a lease instead of a row lock held across the network call).
    applying_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(confirmed_at__isnull=True, superseded=False),
                name="connection_change_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{'enable' if self.enable else 'disable'} {self.customer} ({self.reason})"


class RunState(models.TextChoices):
    """Where a bill run or a reconciliation is."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class RunQuerySet(models.QuerySet):
    def stalled(self, stale_seconds: int) -> "RunQuerySet":
        """Runs not finished that have shown no progress for ``stale_seconds``, whatever
        they believe about their messages: the ones a sweep hands over again."""
        cutoff = timezone.now() - timedelta(seconds=stale_seconds)
        return self.filter(
            state__in=[RunState.PENDING, RunState.RUNNING], last_progress_at__lte=cutoff
        )


class BillRun(models.Model):
    """One bill generation for a month: who asked, for whom, how far it got, and a health
    check of the result."""

    State = RunState

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task_id = models.CharField(max_length=64, unique=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    billing_year = models.PositiveSmallIntegerField()
    billing_month = models.CharField(max_length=9, choices=BillingMonth.choices)
    customer_ids = models.JSONField(
        null=True, blank=True, help_text="The customers this run is limited to; empty: all."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    enqueued = models.BooleanField(
        default=False, help_text="The broker accepted the run's first task."
    )
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    billable_count = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    missing_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="Billable customers still without a record (must be 0)."
    )
    planned_through_id = models.BigIntegerField(
        null=True, blank=True, help_text="The highest customer id when the run was planned."
    )
    newcomer_count = models.PositiveIntegerField(
        default=0, help_text="Customers created or made billable during the run, billed last."
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(
        default=timezone.now, help_text="Its last step done (or its last hand-over by a sweep)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Bill run {self.billing_month} {self.billing_year} ({self.state})"


class BillRunChunk(models.Model):
    """A slice of a run's customers (by id range); done once, whatever redelivers it."""

    run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    created_count = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="bill_run_chunk_unique"),
        ]

    def __str__(self) -> str:
        first, last = self.first_customer_id, self.last_customer_id
        return f"Chunk {self.number} of {self.run} (customers {first}-{last})"


class ReconciliationRun(models.Model):
    """A check of every record against its ledger, and the credit it carried forward."""

    State = RunState

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task_id = models.CharField(max_length=64, unique=True)
    trigger = models.CharField(max_length=40, default="NIGHTLY")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    checked_count = models.PositiveIntegerField(default=0)
    fixed_count = models.PositiveIntegerField(default=0)
    credits_moved = models.PositiveIntegerField(default=0)
    credit_amount = money_field(default=ZERO)
    discrepancies = models.JSONField(default=list, blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(
        default=timezone.now, help_text="Its last step done (or its last hand-over by a sweep)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation {self.trigger} ({self.state})"


class ReconciliationChunk(models.Model):
    """A slice of a reconciliation's records (by payment id range); its figures are added
    to the run once, whatever redelivers it."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_payment_id = models.BigIntegerField()
    last_payment_id = models.BigIntegerField()
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "number"], name="reconciliation_chunk_unique"
            ),
        ]

    def __str__(self) -> str:
        first, last = self.first_payment_id, self.last_payment_id
        return f"Chunk {self.number} of {self.run} (payments {first}-{last})"


class RouterRun(models.Model):
    """A sync (compare and repair) or an import of one router, with its lifecycle."""

    State = RunState

    class Kind(models.TextChoices):
        SYNC = "SYNC"
        IMPORT = "IMPORT"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task_id = models.CharField(max_length=64, unique=True)
    router = models.ForeignKey(Router, on_delete=models.PROTECT, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    dry_run = models.BooleanField(default=False)
    trigger = models.CharField(max_length=40, default="ON_DEMAND")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(
        default=timezone.now, help_text="Its last step done (or its last hand-over by a sweep)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [ordered_by("created_at", name="router_run_created_idx")]
        constraints = [
            # One live run of each kind per router: a second request joins the first.
            models.UniqueConstraint(
                fields=["router", "kind"],
                condition=Q(state__in=[RunState.PENDING, RunState.RUNNING]),
                name="router_run_one_live",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.router} ({self.state})"


class RouterAction(models.Model):
    """One thing done (or tried) at a router, with its outcome. Appended, never changed:
    PostgreSQL refuses an UPDATE or DELETE of these rows (migration 0010)."""

    class Action(models.TextChoices):
        ENABLE = "ENABLE"
        DISABLE = "DISABLE"
        SET_PROFILE = "SET_PROFILE"
        ADD_SECRET = "ADD_SECRET"
        DROP_SESSION = "DROP_SESSION"
        BLOCK = "BLOCK"  # the address put in the blocked list
        UNBLOCK = "UNBLOCK"

    class Outcome(models.TextChoices):
        OK = "OK"
        FAILED = "FAILED"

    router = models.ForeignKey(Router, on_delete=models.PROTECT, related_name="actions")
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, null=True, blank=True, related_name="router_actions"
    )
    run = models.ForeignKey(
        RouterRun, on_delete=models.PROTECT, null=True, blank=True, related_name="actions"
    )
    change = models.ForeignKey(
        ConnectionChange, on_delete=models.PROTECT, null=True, blank=True, related_name="actions"
    )
    target = models.CharField(max_length=100, help_text="The secret's name or the address.")
    action = models.CharField(max_length=20, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True, help_text="What it was and what it became.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["router", "-created_at", "-id"], name="router_action_router_idx"),
            models.Index(fields=["customer", "-created_at", "-id"],
                         name="router_action_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target} at {self.router}: {self.outcome}"


class Notification(models.Model):
    """The outbox: written with the event it reports, sent later by the dispatcher."""

    class Event(models.TextChoices):
        BILL_ISSUED = "BILL_ISSUED"
        PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
        DUE_REMINDER = "DUE_REMINDER"
        SUSPENDED = "SUSPENDED"

    class Channel(models.TextChoices):
        SMS = "SMS"
        EMAIL = "EMAIL"

    class State(models.TextChoices):
        PENDING = "PENDING"
        SENDING = "SENDING"
        SENT = "SENT"
        FAILED = "FAILED"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notifications")
    payment = models.ForeignKey(
        Payment, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    event = models.CharField(max_length=20, choices=Event.choices)
    event_key = models.CharField(
        max_length=120, help_text="What happened, once: e.g. bill:<payment id>."
    )
    channel = models.CharField(max_length=5, choices=Channel.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_key", "channel"], name="notification_once_per_event_channel"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["PENDING", "SENDING"]),
                name="notification_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.customer} by {self.channel} ({self.state})"
