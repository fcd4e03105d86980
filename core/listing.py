"""``?search=``, ``?ordering=`` and field filters for every list, written once."""

from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet

from core.errors import field_error


def search_filter(queryset: QuerySet, term: str | None, fields: tuple[str, ...]) -> QuerySet:
    """Rows where every word of ``term`` is in one of ``fields`` (case-insensitive)."""
    for word in (term or "").split():
        queryset = queryset.filter(reduce(or_, (Q(**{f"{f}__icontains": word}) for f in fields)))
    return queryset


def ordering_apply(
    queryset: QuerySet, ordering: str | None, allowed: dict[str, str]
) -> QuerySet:
    """Order by ``?ordering=field,-other`` where each field is a key of ``allowed``
    (public name → model path); the default order (newest first) breaks ties."""
    if not ordering:
        return queryset
    order_by = []
    for term in ordering.split(","):
        term = term.strip()
        name = term.lstrip("-")
        if name not in allowed:
            raise field_error(
                "ordering", f'"{name}" is not an ordering field; use one of {", ".join(allowed)}.'
            )
        order_by.append(("-" if term.startswith("-") else "") + allowed[name])
    return queryset.order_by(*order_by, *queryset.query.order_by or queryset.model._meta.ordering)


def filters_apply(queryset: QuerySet, filters, lookups: dict[str, str]) -> QuerySet:
    """Filter by each of ``filters``' attributes that was given (not None or empty),
    with the ORM lookup ``lookups`` names for it."""
    for name, lookup in lookups.items():
        value = getattr(filters, name)
        if value is not None and value != "":
            queryset = queryset.filter(**{lookup: value})
    return queryset
