"""Field types shared by every schema: money, business-time timestamps, DRF messages."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from django.db.models.fields.files import FieldFile
from django.utils import timezone
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from core.timeutils import FIRST_YEAR, LAST_YEAR
from core.validators import INT64_MAX, INT64_MIN

# Money goes out as a string with two places ("500.00").
Money = Annotated[Decimal, PlainSerializer(lambda v: f"{v:.2f}", return_type=str)]


def _refuse_bool(message: str):
    """JSON's ``true`` would be taken as 1: DRF's integer and related fields refuse it."""

    def check(value):
        if isinstance(value, bool):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


NotABool = _refuse_bool("A valid integer is required.")

# A billing year (the database holds the same range as a check constraint).
BillingYear = Annotated[int, NotABool, Field(ge=FIRST_YEAR, le=LAST_YEAR)]

# An integer that reaches the database: outside a 64-bit column's range it is a 400 on
# its field, not an overflow in the database driver.
DbInt = Annotated[int, NotABool, Field(ge=INT64_MIN, le=INT64_MAX)]

# The integer id of another record in a write body (``customer_id``), with the message
# of DRF's ``PrimaryKeyRelatedField``.
RecordId = Annotated[
    int,
    _refuse_bool("Incorrect type. Expected pk value, received bool."),
    Field(ge=INT64_MIN, le=INT64_MAX),
]

# Timestamps go out in the business timezone, ISO 8601 with the offset. The zone is
# read directly, not through ``timezone.localtime``, whose per-call lookup of the
# active zone was a tenth of a 50-row page's cost; nothing activates another zone.
def local_iso(value: datetime) -> str:
    return value.astimezone(timezone.get_default_timezone()).isoformat()


LocalDateTime = Annotated[datetime, PlainSerializer(local_iso, return_type=str)]


class OutSchema(BaseModel):
    """An output shape read straight from model attributes by pydantic-core.

    Ninja's ``Schema`` wraps every object in a Python-level getter, which made a
    50-row page cost several times more to serialise than its queries."""

    model_config = ConfigDict(from_attributes=True)


def _file_url(value):
    if isinstance(value, FieldFile):
        return value.url if value else None
    return value


# A file field goes out as its URL, or null when empty.
FileUrl = Annotated[str | None, BeforeValidator(_file_url)]


def _related_list(value):
    return list(value.all()) if hasattr(value, "all") else value


# A to-many relation (prefetched by the selector) goes out as a list.
RelatedList = BeforeValidator(_related_list)
