"""Field types shared by every schema: money, business-time timestamps, DRF messages."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from django.utils import timezone
from pydantic import PlainSerializer

# Money goes out as a string with two places ("500.00").
Money = Annotated[Decimal, PlainSerializer(lambda v: f"{v:.2f}", return_type=str)]

# Timestamps go out in the business timezone, ISO 8601 with the offset.
LocalDateTime = Annotated[
    datetime, PlainSerializer(lambda v: timezone.localtime(v).isoformat(), return_type=str)
]


