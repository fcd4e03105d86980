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


class OrjsonParser(Parser):
    def parse_body(self, request):
        return orjson.loads(request.body)
