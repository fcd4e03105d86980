import sys

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.urls import is_valid_path

from core.errors import DATABASE_ERRORS, database_unavailable
from core.throttling import address_credentials_wait, client_address

API_PREFIX = "/api/"


class ApiConventionsMiddleware:
    """Transport conventions of the API that sit below the router.

    - A path with a trailing slash is answered as the canonical path without
      it, for every method (POST included) and without a redirect.
    - A path that names nothing is 404 here, before Django's ``APPEND_SLASH``
      can redirect it (the API root exists only as ``/api/v1/``, so stripping
      its slash would otherwise redirect back to it, forever).
    - Django's bare 404 and 405 answers under ``/api/`` get a JSON ``detail``.
    - ``HEAD`` is answered as ``GET`` without the body (its ``Content-Length``
      kept): the router declares only ``GET``.
    - A database that is down is 503 with ``Retry-After`` in every view, the
      admin's and the pay page's included (the API's own handler answers there).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        if request.method == "HEAD":
            request.method = "GET"
            return _without_body(self._answer(request))
        return self._answer(request)

    def _answer(self, request):
        if len(request.path_info) > len(API_PREFIX) and request.path_info.endswith("/"):
            request.path_info = request.path_info.rstrip("/")
            request.path = request.path.rstrip("/")  # so links built from it are canonical
        if not is_valid_path(request.path_info, getattr(request, "urlconf", None)):
            return json_handler404(request)
        response = self.get_response(request)
        if response.status_code in (404, 405) and not _is_json(response):
            response = _json_error(response, request.method)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request, exception)
        return None


def _without_body(response: HttpResponse) -> HttpResponse:
    if response.streaming:
        response.streaming_content = []
    else:
        response["Content-Length"] = str(len(response.content))
        response.content = b""
    return response


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


def _json_error(response: HttpResponse, method: str) -> HttpResponse:
    if response.status_code == 404:
        detail = "Not found."
    else:
        detail = f'Method "{method}" not allowed.'
    replacement = HttpResponse(
        orjson.dumps({"detail": detail}),
        status=response.status_code,
        content_type="application/json",
    )
    if "Allow" in response:
        replacement["Allow"] = response["Allow"]
    return replacement


def json_handler404(request, exception=None):
    return HttpResponse(
        orjson.dumps({"detail": "Not found."}), status=404, content_type="application/json"
    )


def json_handler400(request, exception=None):
    """What Django answers for a request it refuses before any view (too many query
    parameters, a bad Host header): JSON like every other error."""
    return HttpResponse(
        orjson.dumps({"detail": "Bad request."}), status=400, content_type="application/json"
    )


def json_handler500(request):
    # The database met outside any view (a session saved by middleware).
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_ERRORS):
        return database_unavailable(request, error)
    detail = "A server error occurred."
    if settings.DEBUG:
        detail += " See the server log."
    return HttpResponse(
        orjson.dumps({"detail": detail}), status=500, content_type="application/json"
    )


THROTTLED_DETAIL = "Too many requests."  # ninja.errors.Throttled's own
LOGIN_PATHS = frozenset({"/api/v1/users/login", "/api/v1/users/login/"})


class LoginFloodMiddleware:
    """A login from an address that has used up its failed credentials is 429 here,
    before sessions, the audit trail and the body are read: a wrong-password flood from
    one address then costs one cache read per request, and other clients keep their
    speed (bench/login_flood.py). The same refusal the login service makes
    (core.throttling); only its address half can be judged without the body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path_info in LOGIN_PATHS:
            wait = address_credentials_wait(client_address(request))
            if wait:
                response = HttpResponse(
                    orjson.dumps({"detail": THROTTLED_DETAIL}),
                    status=429,
                    content_type="application/json",
                )
                response["Retry-After"] = str(wait)
                return response
        return self.get_response(request)
