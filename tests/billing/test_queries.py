"""No N+1: every list costs the same number of queries for a page of 1 and of 1000."""

import pytest

from core.enums import BillingMonth, UserKind
from core.timeutils import business_month
from tests.billing.factories import (
    CustomerFactory,
    PackageFactory,
    PaymentFactory,
    RouterFactory,
)

pytestmark = pytest.mark.django_db

ROWS = 30


@pytest.fixture
def data(make_user):
    """30 customers on one package (each with a linked user, a router of their own and a
    paid record collected by staff), 30 records of the first customer, 30 more packages
    with a customer each (on no router)."""
    year, _ = business_month()
    package = PackageFactory()
    collector = make_user(kind=UserKind.STAFF)
    customers = [
        CustomerFactory(package=package, user=make_user(kind=UserKind.CUSTOMER),
                        router=RouterFactory())
        for _ in range(ROWS)
    ]
    for customer in customers[1:]:
        PaymentFactory(customer=customer, amount=package.price, entry_by=collector)
    first = customers[0]
    for n in range(ROWS):
        PaymentFactory(customer=first, billing_year=year - 3 + n // 12,
                       billing_month=list(BillingMonth)[n % 12], amount=10, entry_by=collector)
    for _ in range(ROWS):
        CustomerFactory(package=PackageFactory())
    return package, first


# The queries each list needs, whatever the page size: authentication (the user), the
# tables' latest change (the key of the cached count), the count (on a cache miss), the
# page (with its joins and annotations), and for a nested list its parent.
CASES = {
    "customers": (lambda package, customer: "/customers", 4),
    "payments": (lambda package, customer: "/payments", 4),
    "packages": (lambda package, customer: "/packages", 3),  # public: no authentication
    "customer_payments": (lambda package, customer: f"/customers/{customer.uid}/payments", 5),
    "package_customers": (lambda package, customer: f"/packages/{package.uid}/customers", 5),
    "routers": (lambda package, customer: "/routers", 4),  # customers counted in the page
}
# Searching and reordering change the page's SQL, not how many queries it takes.
VARIANTS = {
    "customers_searched": ("customers", {"search": "customer 1", "ordering": "-name"}),
    "customers_by_phone": ("customers", {"ordering": "phone"}),
    "payments_by_amount": ("payments", {"ordering": "-amount", "search": "customer"}),
    "payments_of_a_month": (
        "payments", {"billing_year": business_month()[0] - 2, "month": "MARCH"}
    ),
    "routers_by_drift": ("routers", {"search": "router-", "ordering": "-drift_count"}),
}


@pytest.mark.parametrize("case", [*CASES, *VARIANTS])
def test_list_queries_do_not_grow_with_page_size(admin_client, data,
                                                 django_assert_max_num_queries, case):
    base, params = VARIANTS.get(case, (case, {}))
    path_for, queries = CASES[base]
    path = path_for(*data)
    for page_size in (1, 1000):
        with django_assert_max_num_queries(queries):
            response = admin_client.get(path, {"page_size": page_size, **params})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["count"] >= (1 if params else ROWS)
        assert len(body["results"]) == (1 if page_size == 1 else body["count"])
