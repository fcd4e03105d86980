"""The business calendar: one place that knows the business timezone."""

from datetime import date, datetime, time

from django.utils import timezone

from core.enums import BillingMonth

# The years a bill or a payment may fall in: anything else is a typing mistake.
FIRST_YEAR, LAST_YEAR = 2000, 2100


def business_now() -> datetime:
    return timezone.localtime()


def business_month(moment: datetime | None = None) -> tuple[int, BillingMonth]:
    """The (year, month) that ``moment`` (default: now) falls in, in the business timezone."""
    local = timezone.localtime(moment) if moment else business_now()
    return local.year, BillingMonth.from_number(local.month)


def start_of_business_day(day: date) -> datetime:
    """A bare date means the start of that day in the business timezone."""
    return timezone.make_aware(datetime.combine(day, time.min))
