"""DRF-style page-number pagination: ``?page=1&page_size=20``.

The answer is ``{"count", "next", "previous", "results"}`` with absolute
``next``/``previous`` URLs that keep the other query parameters. A page past
the end, or a page that is not a positive number, is 404 ``Invalid page.``
(as DRF's ``PageNumberPagination``); a page size above the maximum is capped.
"""

import hashlib
from functools import cache as memoize
from typing import Annotated, Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.http import urlencode
from ninja import Field, Schema
from ninja.pagination import PaginationBase
from pydantic import WithJsonSchema

from core.cache import cache_get, cache_set
from core.errors import ApiError


class InvalidPage(ApiError):
    status_code = 404

    def __init__(self):
        super().__init__({"detail": "Invalid page."})


# Declared as the integer the app sends, read as DRF reads it: leniently, so that a
# page that is not a positive number is 404 and such a page size is the default.
QueryInt = Annotated[str | None, WithJsonSchema({"type": "integer", "minimum": 1})]


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


class PageNumberPagination(PaginationBase):
    class Input(Schema):
        page: QueryInt = Field(None, description="A page number (1-based).")
        page_size: QueryInt = Field(
            None,
            description=(
                f"Results per page (default {settings.NINJA_PAGINATION_PER_PAGE}, "
                f"max {settings.NINJA_PAGINATION_MAX_PER_PAGE_SIZE})."
            ),
        )

    class Output(Schema):
        count: int
        next: str | None
        previous: str | None
        results: list[Any]

    items_attribute = "results"

    def paginate_queryset(
        self, queryset: QuerySet, pagination: Input, request: HttpRequest, **params: Any
    ) -> dict[str, Any]:
        page_size = min(
            _positive_int(pagination.page_size) or settings.NINJA_PAGINATION_PER_PAGE,
            settings.NINJA_PAGINATION_MAX_PER_PAGE_SIZE,
        )
        if pagination.page in (None, "", "last"):
            page = 1
        else:
            page = _positive_int(pagination.page)
            if page is None:
                raise InvalidPage()
        count = None
        if pagination.page == "last":
            count = cached_count(queryset)
            page = max(1, -(-count // page_size))
        offset = (page - 1) * page_size
        rows = list(queryset[offset : offset + page_size])
        if count is None:
            # A last page read whole tells the count without a COUNT(*) (most searches
            # end on their first page).
            last_read_whole = len(rows) < page_size and (rows or page == 1)
            count = offset + len(rows) if last_read_whole else cached_count(queryset)
        last_page = max(1, -(-count // page_size))
        if page > last_page:
            raise InvalidPage()
        return {
            "count": count,
            "next": _page_url(request, page + 1) if page < last_page else None,
            "previous": _page_url(request, page - 1) if page > 1 else None,
            "results": rows,
        }


def _page_url(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    if page == 1:
        query.pop("page", None)
    else:
        query["page"] = str(page)
    encoded = urlencode(sorted(query.lists()), doseq=True)
    return request.build_absolute_uri(request.path + (f"?{encoded}" if encoded else ""))


COUNT_CACHE_SECONDS = 60


def cached_count(queryset: QuerySet) -> int:
    """The ``COUNT(*)`` behind a page, remembered until a table the query reads changes.

    On a large table the count is most of a list's cost, and the app asks for the
    same counts again and again. Every table read here has an indexed ``updated_at``
    that every write moves, so the latest ``updated_at`` of each (one cheap query)
    is part of the cache key. Queries over other tables are counted every time."""
    # The key is the SQL of what is counted: no ordering, no selected joins, one column.
    try:
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:  # a filter no row can match (a value outside its column's range)
        return 0
    tables = sorted(
        {join.table_name for join in queryset.query.alias_map.values()}
        | {queryset.model._meta.db_table}
    )
    if not all(table in _stamped_tables() for table in tables):
        return queryset.count()
    latest = ", ".join(
        f"(SELECT MAX(updated_at) FROM {connection.ops.quote_name(table)})" for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {latest}")
        stamp = cursor.fetchone()
    key = "count:" + hashlib.sha256(repr((sql, params, stamp)).encode()).hexdigest()
    count = cache_get(key)
    if count is None:
        count = queryset.count()
        cache_set(key, count, COUNT_CACHE_SECONDS)
    return count


@memoize
def _stamped_tables() -> frozenset[str]:
    """Tables whose every write moves an indexed ``updated_at``."""
    return frozenset(
        model._meta.db_table
        for model in apps.get_models()
        if any(f.name == "updated_at" and f.db_index for f in model._meta.fields)
    )
