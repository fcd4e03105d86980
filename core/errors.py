"""Error shapes of the DRF backend the staff app was written against.

400 ``{"<field>": ["message", ...]}`` (cross-field errors under
``non_field_errors``), 401 ``{"detail"}`` with ``WWW-Authenticate``, 403/404/405
``{"detail"}``, 413 for a body over Django's upload limit, 503 with ``Retry-After``
when the task queue or the database is down. Nothing a client sends may turn into
a 500.
"""

import logging
import math
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from core.renderers import NotAnObject, NullCharacters

logger = logging.getLogger(__name__)

NON_FIELD_ERRORS = "non_field_errors"
WWW_AUTHENTICATE = 'Bearer realm="api", Basic realm="api"'


class ApiError(Exception):
    """A client error with a DRF-shaped body."""

    status_code = 400

    def __init__(self, body: dict[str, Any], status_code: int | None = None):
        self.body = body
        if status_code is not None:
            self.status_code = status_code
        super().__init__(body)


class FieldErrors(ApiError):
    """400 with messages per field: ``FieldErrors({"phone": ["Already taken."]})``."""

    def __init__(self, errors: dict[str, list[str] | str]):
        super().__init__(
            {field: [m] if isinstance(m, str) else list(m) for field, m in errors.items()}
        )


def field_error(field: str, message: str) -> FieldErrors:
    return FieldErrors({field: message})


class NotAuthenticated(ApiError):
    status_code = 401

    def __init__(self, detail: str = "Authentication credentials were not provided.", **extra):
        super().__init__({"detail": detail, **extra})


class PermissionDenied(ApiError):
    status_code = 403

    def __init__(self, detail: str = "You do not have permission to perform this action."):
        super().__init__({"detail": detail})


class ServiceUnavailable(ApiError):
    status_code = 503

    def __init__(self, detail: str = "The task queue is unavailable; try again shortly."):
        super().__init__({"detail": detail})


# What a client is told to wait before trying again after a 503.
RETRY_AFTER_SECONDS = 5
# A database that cannot be reached, or a failure the next attempt may not meet
# (a dropped connection, a deadlock, a statement timeout).
DATABASE_ERRORS = (OperationalError, InterfaceError)
DATABASE_DOWN = {"detail": "The database is unavailable; try again shortly."}


def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    """503 for a database error, wherever it is met (a view, an authenticator, middleware)."""
    logger.warning("Database unavailable on %s %s: %s", request.method, request.path, exc)
    response = HttpResponse(
        orjson.dumps(DATABASE_DOWN), status=503, content_type="application/json"
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


_PYDANTIC_MESSAGES = {
    "missing": "This field is required.",
    "int_parsing": "A valid integer is required.",
    "int_type": "A valid integer is required.",
    "int_from_float": "A valid integer is required.",
    "decimal_parsing": "A valid number is required.",
    "decimal_type": "A valid number is required.",
    "float_parsing": "A valid number is required.",
    "finite_number": "A valid number is required.",
    "bool_parsing": "Must be a valid boolean.",
    "bool_type": "Must be a valid boolean.",
    "string_type": "Not a valid string.",
    "uuid_parsing": "Must be a valid UUID.",
    "uuid_type": "Must be a valid UUID.",
    "date_parsing": "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
    "date_from_datetime_parsing": (
        "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."
    ),
    "datetime_parsing": "Datetime has wrong format.",
    "datetime_from_date_parsing": "Datetime has wrong format.",
    "dict_type": "Expected a JSON object.",
    "model_type": "Expected a JSON object.",
    "model_attributes_type": "Expected a JSON object.",
    "list_type": "Expected a list of items.",
    "json_invalid": "Invalid JSON.",
}


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "enum" or kind == "literal_error":
        return f'"{error.get("input", "")}" is not a valid choice.'
    if kind == "string_too_long":
        return f"Ensure this field has no more than {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return "This field may not be blank." if ctx.get("min_length") == 1 else (
            f"Ensure this field has at least {ctx.get('min_length')} characters."
        )
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": ("greater than or equal to", "ge"),
            "greater_than": ("greater than", "gt"),
            "less_than_equal": ("less than or equal to", "le"),
            "less_than": ("less than", "lt"),
        }[kind]
        return f"Ensure this value is {bound[0]} {ctx.get(bound[1])}."
    if kind.startswith("decimal_max") or kind == "decimal_whole_digits":
        return "Ensure there are no more than 2 decimal places." if "places" in kind else (
            "Ensure that there are not too many digits."
        )
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "Invalid value.")))
    return _PYDANTIC_MESSAGES.get(kind, error.get("msg", "Invalid value."))


def drf_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Pydantic errors (with ninja's ``loc``: source, parameter, field…) keyed by field.

    An error inside a list or an object is keyed by the field, then the item's index
    or key, as DRF's ``ListField`` and nested serializers key it:
    ``{"customer_ids": {"0": ["A valid integer is required."]}}``."""
    body: dict[str, Any] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        source, path = (loc[0], loc[1:]) if loc else ("body", [])
        if source == "body" and path:
            path = path[1:]  # the body parameter's own name
        keys = path or [NON_FIELD_ERRORS]
        node: Any = body
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if isinstance(node, list):  # the field itself was refused: one list for it
                break
        else:
            node = node.setdefault(keys[-1], [])
        if isinstance(node, dict):  # items were refused first: the field's own error beside
            node = node.setdefault(NON_FIELD_ERRORS, [])
        message = _message(error)
        if message not in node:
            node.append(message)
    return body


def _respond(api: NinjaAPI, request: HttpRequest, body: dict, status: int) -> HttpResponse:
    response = api.create_response(request, body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    elif status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ApiError)
    def api_error(request, exc: ApiError):
        return _respond(api, request, exc.body, exc.status_code)

    @api.exception_handler(NinjaValidationError)
    def validation_error(request, exc: NinjaValidationError):
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors):
            # A malformed id in the URL names nothing: not found, as DRF's lookups answer.
            return _respond(api, request, {"detail": "Not found."}, 404)
        return _respond(api, request, drf_errors(exc.errors), 400)

    @api.exception_handler(DjangoValidationError)
    def model_validation_error(request, exc: DjangoValidationError):
        if hasattr(exc, "message_dict"):
            body = {
                (NON_FIELD_ERRORS if field == "__all__" else field): messages
                for field, messages in exc.message_dict.items()
            }
        else:
            body = {NON_FIELD_ERRORS: exc.messages}
        return _respond(api, request, body, 400)

    @api.exception_handler(AuthenticationError)
    def authentication_error(request, exc: AuthenticationError):
        has_credentials = "HTTP_AUTHORIZATION" in request.META
        detail = (
            "Invalid or expired credentials."
            if has_credentials
            else "Authentication credentials were not provided."
        )
        return _respond(api, request, {"detail": detail}, 401)

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        if isinstance(exc.__cause__, NullCharacters):
            body = {field: ["Null characters are not allowed."] for field in exc.__cause__.fields}
            return _respond(api, request, body, 400)
        if isinstance(exc.__cause__, NotAnObject):
            return _respond(api, request, {NON_FIELD_ERRORS: [str(exc.__cause__)]}, 400)
        detail = str(exc)
        if exc.status_code == 400 and detail.startswith("Cannot parse request body"):
            detail = "JSON parse error - the request body is not valid JSON."
        response = _respond(api, request, {"detail": detail}, exc.status_code)
        if isinstance(exc, Throttled) and exc.wait:  # raised in auth or a service (429)
            response["Retry-After"] = str(math.ceil(exc.wait))
        return response

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return _respond(api, request, {"detail": "Not found."}, 404)

    @api.exception_handler(ObjectDoesNotExist)
    def object_not_found(request, exc):
        return _respond(api, request, {"detail": "Not found."}, 404)

    @api.exception_handler(SuspiciousOperation)
    def refused_request(request, exc: SuspiciousOperation):
        # Django's own limits, met while the request is read (a body over
        # DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields).
        if isinstance(exc, RequestDataTooBig):
            return _respond(api, request, {"detail": "The request body is too large."}, 413)
        return _respond(api, request, {"detail": "Bad request."}, 400)

    @api.exception_handler(DataError)
    def data_error(request, exc: DataError):
        # A value the database refuses to store or compare: a NUL character in a
        # string, a number out of a column's range. The client sent it.
        logger.info("Refused value on %s %s: %s", request.method, request.path, exc)
        body = {NON_FIELD_ERRORS: ["The request contains a value that cannot be stored."]}
        return _respond(api, request, body, 400)

    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    def database_down(request, exc: Exception):
        return database_unavailable(request, exc)

    @api.exception_handler(Exception)
    def unexpected(request, exc: Exception):
        if settings.DEBUG:
            raise exc
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return _respond(api, request, {"detail": "A server error occurred."}, 500)
