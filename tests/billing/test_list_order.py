"""Every list order is total and read through an index: a page never sorts a tie group.

A bill-run chunk gives every record it inserts one ``created_at`` (5,000 a chunk). With the
index on ``created_at`` alone, ``ORDER BY created_at DESC, id DESC LIMIT 50`` sorted the whole
group before returning a page. The plans are asked for with sorting and sequential scans
discouraged (``enable_sort``, ``enable_incremental_sort``, ``enable_seqscan`` off): a Sort
node left in the plan means no index gives the order.
"""

import pytest
from django.db import connection

from accounts.api import USER_ORDERING
from accounts.selectors import user_list
from billing import bills
from billing.api import CUSTOMER_ORDERING, PAYMENT_ORDERING
from billing.models import Customer, Payment
from billing.selectors import customer_page, payment_page
from core.enums import BillingMonth, UserKind
from core.listing import ordering_apply
from tests.billing.factories import PackageFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

RECORDS = 2000


@pytest.fixture
def billed(make_user):
    """2,000 customers billed by one real bill run: one chunk, one ``created_at``."""
    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    package = PackageFactory()
    Customer.objects.bulk_create(
        Customer(name=f"Customer {n}", phone=f"0171{n:07d}", package=package)
        for n in range(RECORDS)
    )
    run = bills.bill_run_start(requested_by=None, year=2026, month=BillingMonth.MARCH)
    bills.bill_run_plan(run_id=run.pk)
    for chunk in run.chunks.all():
        bills.bill_chunk_process(chunk_id=chunk.pk)
    assert Payment.objects.values("created_at").distinct().count() == 1
    assert Payment.objects.count() == RECORDS
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_payment; ANALYZE billing_customer; ANALYZE accounts_user")
    return make_user(kind=UserKind.ADMIN)


def plan(queryset) -> str:
    sql, params = queryset[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off; "
            "SET LOCAL enable_seqscan = off"
        )
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def orderings(allowed: dict) -> list[str | None]:
    return [None, *allowed, *(f"-{name}" for name in allowed)]


def assert_index_order(queryset, ordering, allowed):
    text = plan(ordering_apply(queryset, ordering, allowed))
    assert "Sort" not in text, f"ordering={ordering} sorts:\n{text}"
    assert "Index" in text, text


@pytest.mark.parametrize("ordering", orderings(PAYMENT_ORDERING))
def test_payment_list_orders_come_from_an_index(billed, ordering):
    assert_index_order(payment_page(viewer=billed), ordering, PAYMENT_ORDERING)


def test_a_months_payments_newest_first_come_from_an_index(billed):
    month = payment_page(viewer=billed).filter(billing_year=2026, billing_month="MARCH")
    assert_index_order(month, None, PAYMENT_ORDERING)


@pytest.mark.parametrize("ordering", orderings(CUSTOMER_ORDERING))
def test_customer_list_orders_come_from_an_index(billed, ordering):
    assert_index_order(customer_page(viewer=billed), ordering, CUSTOMER_ORDERING)


@pytest.mark.parametrize("ordering", orderings(USER_ORDERING))
def test_user_list_orders_come_from_an_index(billed, ordering):
    assert_index_order(user_list(), ordering, USER_ORDERING)


def test_the_newest_page_reads_the_page_not_the_tie_group(billed):
    """Without any planner setting: the first page of the 2,000 tied records reads ~50 rows."""
    sql, params = payment_page(viewer=billed)[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        root = cursor.fetchone()[0][0]["Plan"]

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    scanned = [n for n in nodes(root) if n.get("Relation Name") == "billing_payment"]
    assert scanned and all(n["Actual Rows"] <= 50 for n in scanned), root
    assert not any("Sort" in n["Node Type"] for n in nodes(root)), root


def test_ties_follow_the_direction_of_the_first_field(billed):
    ascending = list(ordering_apply(payment_page(viewer=billed), "amount", PAYMENT_ORDERING)[:5])
    descending = list(ordering_apply(payment_page(viewer=billed), "-amount", PAYMENT_ORDERING)[:5])
    assert [r["id"] for r in ascending] == sorted(r["id"] for r in ascending)
    assert [r["id"] for r in descending] == sorted((r["id"] for r in descending), reverse=True)
    assert ascending[0]["id"] < descending[0]["id"]
