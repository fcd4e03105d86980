"""Value checks shared by models (admin forms) and API schemas."""

import math
from decimal import Decimal

from django.core.exceptions import ValidationError

# A signed 64-bit integer column's range.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def validate_json_numbers(value) -> None:
    """Every number in a JSON value fits a signed 64-bit integer's range.

    PostgreSQL keeps JSON numbers exactly and gives ``1e20`` back as the integer
    100000000000000000000, which no JSON encoder of ours (orjson) writes: a record
    holding one could not be shown again."""
    if isinstance(value, bool):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("Numbers must be finite.")
        # Stored as the decimal it prints as: -9.223372036854776e+18 is below -2**63
        # although the float itself equals -2**63.
        value = Decimal(repr(value))
    if isinstance(value, int | Decimal):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError(f"Numbers must lie between {INT64_MIN} and {INT64_MAX}.")
    elif isinstance(value, dict):
        for item in value.values():
            validate_json_numbers(item)
    elif isinstance(value, list):
        for item in value:
            validate_json_numbers(item)
