from decimal import Decimal

import orjson
from django.db.models.fields.files import FieldFile
from ninja.parser import Parser
from ninja.renderers import BaseRenderer


def _default(value):
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, FieldFile):
        return value.url if value else None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return orjson.dumps(data, default=_default)


class NullCharacters(ValueError):
    """A string in the body holds NUL, which no text column can store."""

    def __init__(self, fields: list[str]):
        self.fields = fields
        super().__init__(f"Null characters are not allowed in {', '.join(fields)}.")


class NotAnObject(ValueError):
    """A body that is JSON but not an object: every body of this API is one."""

    def __init__(self, data):
        super().__init__(f"Invalid data. Expected a dictionary, but got {type(data).__name__}.")


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class OrjsonParser(Parser):
    def parse_body(self, request):
        data = orjson.loads(request.body)
        if b"\\u0000" in request.body and _has_nul(data):  # cheap test first
            fields = (
                [str(k) for k, v in data.items() if _has_nul(k) or _has_nul(v)]
                if isinstance(data, dict)
                else ["non_field_errors"]
            )
            raise NullCharacters(fields)
        if data is not None and not isinstance(data, dict):  # null: as no body at all
            raise NotAnObject(data)
        return data
