import ipaddress
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from ninja import Field, Schema
from pydantic import AfterValidator, BeforeValidator, field_validator

from accounts.schemas import UserList, UserLite, _valid_email
from core.enums import (
    BillingMonth,
    ConnectionType,
    OnlineProvider,
    OnlineState,
    PaymentMethod,
    RouterKind,
    Status,
)
from core.schemas import (
    BillingYear,
    DbInt,
    LocalDateTime,
    Money,
    NotABool,
    OutSchema,
    RecordId,
    RelatedList,
)
from core.timeutils import FIRST_YEAR, LAST_YEAR, start_of_business_day
from core.validators import validate_json_numbers

_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_HOSTNAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")

# Free text: room for any real note, never megabytes in a row.
DESCRIPTION_MAX_LENGTH = 1000
ADDRESS_MAX_LENGTH = 500
NOTE_MAX_LENGTH = 1000

# Money in: a string or a number, two places at most, never a float inside.
MoneyIn = Annotated[
    Decimal,
    BeforeValidator(
        lambda v: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
    ),
    Field(max_digits=12, decimal_places=2),
]


def _as_moment(value: Any) -> Any:
    """``payment_date``: a bare date is the start of that day in the business timezone;
    a timestamp without an offset is read in the business timezone too."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return start_of_business_day(date.fromisoformat(text))
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return value  # pydantic reports the bad format
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return start_of_business_day(value)
    return value


def _within_business_years(value: datetime) -> datetime:
    """The year as written: converting year 1 or 9999 to another zone would overflow."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"Enter a date between the years {FIRST_YEAR} and {LAST_YEAR}.")
    return value


Moment = Annotated[
    datetime, BeforeValidator(_as_moment), AfterValidator(_within_business_years)
]


# Packages --------------------------------------------------------------------


class PackageBase(OutSchema):
    id: int
    uid: UUID
    name: str
    speed_mbps: int
    price: Money
    description: str


class PackageList(PackageBase):
    customer_count: int = 0
    router_profile: str = ""


class PackageDetail(PackageList):
    created_at: LocalDateTime
    updated_at: LocalDateTime


class PackageWrite(Schema):
    name: str = Field(..., min_length=1, max_length=150)
    speed_mbps: Annotated[int, NotABool] = Field(..., ge=1, le=1_000_000)
    price: MoneyIn = Field(..., ge=0)
    description: str = Field("", max_length=DESCRIPTION_MAX_LENGTH)
    router_profile: str = Field("", max_length=64)

    @field_validator("router_profile")
    @classmethod
    def _strip_profile(cls, value: str) -> str:
        return value.strip()


# Routers ---------------------------------------------------------------------


class RouterRef(OutSchema):
    id: int
    uid: UUID
    name: str


class RouterDetail(RouterRef):
    kind: RouterKind
    host: str
    port: int | None
    use_tls: bool
    verify_tls: bool
    username: str
    is_enabled: bool
    calls_per_second: int
    timeout_seconds: float
    last_sync_at: LocalDateTime | None
    last_sync_status: str
    last_error: str
    drift_count: int
    customer_count: int = 0
    created_at: LocalDateTime
    updated_at: LocalDateTime


class RouterWrite(Schema):
    """``password`` is write-only: required on create, kept when an update leaves it out."""

    name: str = Field(..., min_length=1, max_length=100)
    kind: RouterKind = RouterKind.ROUTEROS_REST
    host: str = Field(..., min_length=1, max_length=255)
    port: Annotated[int, NotABool] | None = Field(None, ge=1, le=65535)
    use_tls: bool = True
    verify_tls: bool = True
    username: str = Field(..., min_length=1, max_length=100)
    password: str | None = Field(None, max_length=200)
    is_enabled: bool = True
    calls_per_second: Annotated[int, NotABool] = Field(20, ge=1, le=1000)
    timeout_seconds: float = Field(5.0, gt=0, le=120)

    @field_validator("name", "host", "username")
    @classmethod
    def _stripped_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("This field may not be blank.")
        return value

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME.match(value):
                raise ValueError("Enter a valid host name or IP address.") from None
        return value


class RouterDrift(Schema):
    drift_count: int
    drift: list[dict[str, Any]]
    last_sync_at: LocalDateTime | None


class RouterImportIn(Schema):
    dry_run: bool = True


class RunAccepted(Schema):
    task_id: str


# Customers -------------------------------------------------------------------


class CustomerBase(OutSchema):
    id: int
    uid: UUID
    name: str
    email: str
    phone: str
    address: str
    nid: str
    is_free: bool


class CustomerList(CustomerBase):
    package: PackageBase | None
    connection_start_date: date | None
    is_active: bool
    ip_address: str
    mac_address: str
    username: str
    password: str
    connection_type: ConnectionType
    credentials: dict[str, Any]
    status: Status
    balance: Money
    router: RouterRef | None = None


class CustomerDetail(CustomerList):
    user: UserList | None


class CustomerWrite(Schema):
    name: str = Field(..., min_length=1, max_length=200)
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=20)
    address: str = Field("", max_length=ADDRESS_MAX_LENGTH)
    nid: str = Field("", max_length=30)
    is_free: bool = False
    package_id: RecordId
    user_id: RecordId | None = None
    router_id: RecordId | None = None
    connection_start_date: date | None = None
    is_active: bool = True
    ip_address: str = Field("", max_length=45)
    mac_address: str = Field("", max_length=17)
    username: str = Field("", max_length=64)
    password: str = Field("", max_length=128)
    connection_type: ConnectionType = ConnectionType.DHCP
    credentials: dict[str, Any] = Field(default_factory=dict)

    _email = field_validator("email")(_valid_email)

    @field_validator("name", "phone", "username", "nid")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("This field may not be blank.")
        return value

    @field_validator("credentials")
    @classmethod
    def _credentials_numbers(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            validate_json_numbers(value)
        except DjangoValidationError as error:
            raise ValueError(error.messages[0]) from error
        return value

    @field_validator("ip_address")
    @classmethod
    def _valid_ip(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError as error:
                raise ValueError("Enter a valid IPv4 or IPv6 address.") from error
        return value

    @field_validator("mac_address")
    @classmethod
    def _valid_mac(cls, value: str) -> str:
        value = value.strip()
        if value and not _MAC.match(value):
            raise ValueError("Enter a valid MAC address (six hex pairs).")
        return value.upper().replace("-", ":")


class StatusToggleIn(Schema):
    username: str = Field(..., min_length=1)
    is_active: bool


class TaskAccepted(Schema):
    message: str
    task_id: str


# Payments --------------------------------------------------------------------


class CollectionOut(OutSchema):
    uid: UUID
    kind: str
    amount: Money
    payment_method: PaymentMethod
    transaction_id: str
    payment_date: LocalDateTime
    note: str
    recorded_by: UserLite | None
    created_at: LocalDateTime


class PaymentBase(OutSchema):
    id: int
    uid: UUID
    customer: CustomerBase
    entry_by: UserLite | None
    bill_amount: Money
    amount: Money
    billing_month: BillingMonth
    billing_year: int
    payment_method: PaymentMethod
    paid: bool
    transaction_id: str
    payment_date: LocalDateTime | None
    note: str
    created_at: LocalDateTime
    updated_at: LocalDateTime


class PaymentList(PaymentBase):
    customer_id: int


class PaymentDetail(PaymentList):
    collections: Annotated[list[CollectionOut], RelatedList]


class _PaymentFields(Schema):
    billing_month: BillingMonth
    payment_method: PaymentMethod
    transaction_id: str = Field("", max_length=100)
    payment_date: Moment | None = None
    note: str = Field("", max_length=NOTE_MAX_LENGTH)

    @field_validator("transaction_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class PaymentIn(_PaymentFields):
    """``POST /customers/{uid}/payments``: the URL names the customer."""

    amount: MoneyIn = Field(..., gt=0)
    billing_year: BillingYear | None = None
    paid: bool = False


class PaymentCreate(PaymentIn):
    customer_id: RecordId


class PaymentUpdate(_PaymentFields):
    """``PUT /payments/{uid}``: a correction; the amount may go down to zero."""

    amount: MoneyIn = Field(..., ge=0)
    paid: bool


# Dashboard -------------------------------------------------------------------


class Dashboard(Schema):
    total_customers: int
    active_customers: int
    total_packages: int
    total_payments: int
    total_revenue: Money
    pending_payments: int
    current_month_payments: int
    current_month: BillingMonth
    current_year: int
    current_month_billed: Money
    current_month_collected: Money
    current_month_due: Money
    collected_by_method: dict[str, Money]


# Bill runs and tasks ---------------------------------------------------------


class BillGenerateIn(Schema):
    customer_ids: list[DbInt] | None = None


class BillGenerateAccepted(Schema):
    message: str
    task_id: str
    billing_month: BillingMonth
    billing_year: int


class TaskStatus(Schema):
    task_id: str
    status: str
    result: Any = None
    progress: dict[str, Any] | None = None


# Online payments --------------------------------------------------------------


class OnlinePaymentOut(OutSchema):
    id: int
    uid: UUID
    customer: CustomerBase
    provider: OnlineProvider
    state: OnlineState
    amount: Money
    currency: str
    provider_payment_id: str
    transaction_id: str
    payment_uids: list[UUID]
    created_at: LocalDateTime
    updated_at: LocalDateTime


class OnlinePaymentStarted(OnlinePaymentOut):
    redirect_url: str


class PayIn(Schema):
    provider: OnlineProvider
    payment_uids: list[UUID] | None = Field(None, max_length=120)


class RefundIn(Schema):
    amount: MoneyIn | None = None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value):
        if value is not None and value <= 0:
            raise ValueError("Ensure this value is greater than 0.")
        return value
