"""The contract's enums, with their exact strings."""

from django.db import models


class Status(models.TextChoices):
    """A record's lifecycle; REMOVED is a soft delete."""

    ACTIVE = "ACTIVE"
    DRAFT = "DRAFT"
    INACTIVE = "INACTIVE"
    REMOVED = "REMOVED"


class UserKind(models.TextChoices):
    ADMIN = "ADMIN"
    CUSTOMER = "CUSTOMER"
    MANAGER = "MANAGER"
    STAFF = "STAFF"
    SUPER_ADMIN = "SUPER_ADMIN"
    OTHER = "OTHER"


class Gender(models.TextChoices):
    FEMALE = "FEMALE"
    MALE = "MALE"
    UNKNOWN = "UNKNOWN"


class BillingMonth(models.TextChoices):
    JANUARY = "JANUARY"
    FEBRUARY = "FEBRUARY"
    MARCH = "MARCH"
    APRIL = "APRIL"
    MAY = "MAY"
    JUNE = "JUNE"
    JULY = "JULY"
    AUGUST = "AUGUST"
    SEPTEMBER = "SEPTEMBER"
    OCTOBER = "OCTOBER"
    NOVEMBER = "NOVEMBER"
    DECEMBER = "DECEMBER"

    @property
    def number(self) -> int:
        return list(BillingMonth).index(self) + 1

    @classmethod
    def from_number(cls, number: int) -> "BillingMonth":
        return list(cls)[number - 1]


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "BANK_TRANSFER"
    BKASH = "BKASH"
    CASH = "CASH"
    NAGAD = "NAGAD"
    MOBILE_BANKING = "MOBILE_BANKING"
    ONLINE_PAYMENT = "ONLINE_PAYMENT"
    ROCKET = "ROCKET"
    OTHER = "OTHER"


class ConnectionType(models.TextChoices):
    DHCP = "DHCP"
    STATIC = "STATIC"
    PPPOE = "PPPoE"


class RouterKind(models.TextChoices):
    """How we talk to a router: RouterOS v7 REST, or the classic API (8728/8729)."""

    ROUTEROS_REST = "ROUTEROS_REST"
    ROUTEROS_API = "ROUTEROS_API"


class OnlineProvider(models.TextChoices):
    BKASH = "BKASH"
    NAGAD = "NAGAD"
    SSLCOMMERZ = "SSLCOMMERZ"


class OnlineState(models.TextChoices):
    CREATED = "CREATED"
    REDIRECTED = "REDIRECTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REFUNDED = "REFUNDED"
