"""The contract's billing shapes (api-contract.md: Packages, Customers, Payments, Dashboard)."""

import re
from decimal import Decimal

USER_LITE_KEYS = {"id", "uid", "first_name", "last_name", "phone", "email"}
USER_LIST_KEYS = USER_LITE_KEYS | {"gender", "kind", "image"}
PAGE_KEYS = {"count", "next", "previous", "results"}

PACKAGE_BASE_KEYS = {"id", "uid", "name", "speed_mbps", "price", "description"}
# *extra*: the router profile of the package's customers
PACKAGE_LIST_KEYS = PACKAGE_BASE_KEYS | {"customer_count", "router_profile"}
PACKAGE_DETAIL_KEYS = PACKAGE_LIST_KEYS | {"created_at", "updated_at"}

CUSTOMER_BASE_KEYS = {"id", "uid", "name", "email", "phone", "address", "nid", "is_free"}
CUSTOMER_LIST_KEYS = CUSTOMER_BASE_KEYS | {
    "package", "connection_start_date", "is_active", "ip_address", "mac_address",
    "username", "password", "connection_type", "credentials", "status", "balance", "router",
}
CUSTOMER_DETAIL_KEYS = CUSTOMER_LIST_KEYS | {"user"}
ROUTER_REF_KEYS = {"id", "uid", "name"}

PAYMENT_BASE_KEYS = {
    "id", "uid", "customer", "entry_by", "bill_amount", "amount", "billing_month",
    "payment_method", "paid", "transaction_id", "payment_date", "note", "created_at",
    "updated_at", "billing_year",
}
PAYMENT_LIST_KEYS = PAYMENT_BASE_KEYS | {"customer_id"}
PAYMENT_DETAIL_KEYS = PAYMENT_LIST_KEYS | {"collections"}

DASHBOARD_KEYS = {
    "total_customers", "active_customers", "total_packages", "total_payments",
    "total_revenue", "pending_payments", "current_month_payments",
}

MONEY = re.compile(r"^-?\d+\.\d{2}$")
# ISO 8601 with an explicit offset, in the business timezone (Asia/Dhaka by default).
LOCAL_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+06:00$")


def money(value) -> str:
    """What a money field must look like in a response."""
    return f"{Decimal(str(value)):.2f}"


def assert_money(value) -> None:
    assert isinstance(value, str) and MONEY.match(value), value


def assert_package(body: dict, keys=PACKAGE_DETAIL_KEYS) -> None:
    assert set(body) == keys, set(body) ^ keys
    assert_money(body["price"])
    if "created_at" in keys:
        assert LOCAL_TIMESTAMP.match(body["created_at"]), body["created_at"]
        assert LOCAL_TIMESTAMP.match(body["updated_at"]), body["updated_at"]


def assert_customer(body: dict, keys=CUSTOMER_DETAIL_KEYS) -> None:
    assert set(body) == keys, set(body) ^ keys
    assert_money(body["balance"])
    if body["package"] is not None:
        assert_package(body["package"], PACKAGE_BASE_KEYS)
    if "user" in keys and body["user"] is not None:
        assert set(body["user"]) == USER_LIST_KEYS, set(body["user"]) ^ USER_LIST_KEYS
    if body["router"] is not None:
        assert set(body["router"]) == ROUTER_REF_KEYS, set(body["router"]) ^ ROUTER_REF_KEYS
    for field in ("email", "phone", "address", "nid", "ip_address", "mac_address",
                  "username", "password"):
        assert isinstance(body[field], str), (field, body[field])


def assert_payment(body: dict, keys=PAYMENT_DETAIL_KEYS) -> None:
    assert set(body) == keys, set(body) ^ keys
    assert set(body["customer"]) == CUSTOMER_BASE_KEYS, set(body["customer"]) ^ CUSTOMER_BASE_KEYS
    if body["entry_by"] is not None:
        assert set(body["entry_by"]) == USER_LITE_KEYS, set(body["entry_by"]) ^ USER_LITE_KEYS
    assert_money(body["bill_amount"])
    assert_money(body["amount"])
    for field in ("created_at", "updated_at"):
        assert LOCAL_TIMESTAMP.match(body[field]), body[field]
    if body["payment_date"] is not None:
        assert LOCAL_TIMESTAMP.match(body["payment_date"]), body["payment_date"]
    for field in ("transaction_id", "note"):
        assert isinstance(body[field], str)
    if "collections" in keys:
        for line in body["collections"]:
            assert_money(line["amount"])


def assert_page(body: dict) -> None:
    assert set(body) == PAGE_KEYS, set(body) ^ PAGE_KEYS
