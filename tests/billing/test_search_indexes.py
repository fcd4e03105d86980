"""``?search=`` and the ``icontains`` filters are served by trigram indexes on PostgreSQL.

Django's ``icontains`` compiles to ``UPPER(col::text) LIKE UPPER(%s)`` there; the indexes
(billing 0006, accounts 0003) are on that expression. Sequential scans are discouraged in
the plans asked for here (and plain index scans, which read a list in its order and filter
it), so a plan still scanning the table means no index serves the lookup.
"""

import pytest
from django.db import connection

from accounts.api import USER_SEARCH_FIELDS
from accounts.selectors import user_list
from billing.api import CUSTOMER_FILTERS, CUSTOMER_SEARCH, CustomerFilters
from billing.models import Customer
from billing.selectors import customer_page
from core.enums import UserKind
from core.listing import filters_apply, search_filter
from tests.billing.factories import PackageFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def admin(make_user):
    if connection.vendor != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's")
    package = PackageFactory()
    Customer.objects.bulk_create(
        Customer(name=f"Rahim {n}", phone=f"0171{n:07d}", email=f"c{n}@example.com",
                 username=f"pppoe{n}", package=package)
        for n in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_customer; ANALYZE accounts_user")
    return make_user(kind=UserKind.ADMIN)


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def used_indexes(text: str) -> set[str]:
    return {line.split(" on ")[1].split()[0] for line in text.splitlines()
            if "Bitmap Index Scan on" in line and "_trgm_idx" in line}


@pytest.mark.parametrize("word", ["rahim", "01710001", "example.com"])
def test_customer_search_reads_trigram_indexes_of_every_searched_column(admin, word):
    text = plan(search_filter(customer_page(viewer=admin), word, CUSTOMER_SEARCH))
    assert "Seq Scan on billing_customer" not in text, text
    assert used_indexes(text) == {f"customer_{column}_trgm_idx" for column in CUSTOMER_SEARCH}


@pytest.mark.parametrize("name", ["name", "username"])
def test_customer_icontains_filters_read_a_trigram_index(admin, name):
    filters = CustomerFilters(**{name: "ahim 1"})
    text = plan(filters_apply(customer_page(viewer=admin), filters, CUSTOMER_FILTERS))
    assert "Seq Scan on billing_customer" not in text, text
    assert used_indexes(text) == {f"customer_{name}_trgm_idx"}


def test_user_search_reads_trigram_indexes(admin):
    text = plan(search_filter(user_list(), "bench", USER_SEARCH_FIELDS))
    assert "Seq Scan on accounts_user" not in text, text
    assert used_indexes(text) == {f"user_{column}_trgm_idx" for column in USER_SEARCH_FIELDS}


def test_search_still_finds_case_insensitively(admin):
    found = search_filter(customer_page(viewer=admin), "PPPoE1999", CUSTOMER_SEARCH)
    assert [row["name"] for row in found] == ["Rahim 1999"]


def test_every_trigram_index_keeps_a_short_pending_list(admin):
    """A customer or user write is never HOT (its updated_at is indexed): each one queues
    entries in GIN's pending list, which every search reads through (billing 0012)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_am a "
                       "ON a.oid = c.relam WHERE a.amname = 'gin' AND c.relname LIKE "
                       "'%%\\_trgm\\_idx'")
        options = dict(cursor.fetchall())
    assert set(options) == {f"customer_{column}_trgm_idx" for column in CUSTOMER_SEARCH} | {
        f"user_{column}_trgm_idx" for column in USER_SEARCH_FIELDS}
    assert all(found == ["gin_pending_list_limit=128"] for found in options.values()), options
