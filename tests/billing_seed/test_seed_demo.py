"""``manage.py seed_demo``: counts, the ledger invariant, uniqueness, the API rules, reruns."""

import ipaddress
import re
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, DecimalField, F, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from billing.bills import billable_customers
from billing.management.commands import seed_demo
from billing.models import BillRun, Collection, Customer, Package, Payment
from core.enums import ConnectionType, PaymentMethod, UserKind

CUSTOMERS, MONTHS = 50, 3


def seed(**options) -> str:
    out = StringIO()
    options = {"customers": CUSTOMERS, "months": MONTHS, "verbosity": 0, **options}
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def printed_password(output: str) -> str:
    return re.search(r"phone 01900000000 / password (\S+)", output).group(1)


@pytest.fixture(params=["copy", "insert"])
def writer(request, monkeypatch):
    """PostgreSQL runs both ways of writing rows (COPY, and the INSERT used elsewhere)."""
    if request.param == "insert":
        monkeypatch.setattr(seed_demo._Table, "use_copy", False)
    elif connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    return request.param


@pytest.fixture
def seeded(db, writer):
    return seed()


def billed() -> int:
    return billable_customers().count() * MONTHS


def test_counts(seeded):
    assert Package.objects.count() == 8
    assert Customer.objects.count() == CUSTOMERS
    assert 0 < billable_customers().count() < CUSTOMERS  # switched-off ones are not billed
    assert Payment.objects.count() == billed()
    paid = Payment.objects.filter(paid=True).count()
    assert 0 < paid < billed()  # some of each, --paid-ratio 0.7
    assert Collection.objects.count() == paid
    assert "Customers: 50 created" in seeded
    assert f"Payment records: {billed()} ({paid} paid" in seeded


def test_records_come_from_one_bill_run_a_month_each_chunk_one_timestamp(db, settings):
    settings.BILL_RUN_CHUNK_SIZE = 20
    seed(until="2026-03")
    runs = list(BillRun.objects.order_by("created_at"))
    assert [(r.billing_year, r.billing_month, r.state) for r in runs] == [
        (2026, "JANUARY", "SUCCESS"), (2026, "FEBRUARY", "SUCCESS"), (2026, "MARCH", "SUCCESS")
    ]
    chunks = sum(run.chunks_total for run in runs)
    assert chunks == 3 * 3  # 50 customer ids in chunks of 20
    assert Payment.objects.values("created_at").distinct().count() == chunks
    for run in runs:
        assert run.created_count == billable_customers().count()
    paid = Payment.objects.filter(paid=True)
    assert all(p.created_at < p.payment_date == p.updated_at for p in paid)


def test_packages_have_unique_names_and_prices_in_range(seeded):
    packages = list(Package.objects.all())
    assert len({p.name.lower() for p in packages}) == len(packages)
    prices = sorted(p.price for p in packages)
    assert prices[0] == Decimal("500.00") and prices[-1] == Decimal("2500.00")


def test_every_customer_has_one_record_per_recent_month_billed_at_its_package_price(seeded):
    months = {(year, month.value) for year, month in seed_demo.last_business_months(MONTHS)}
    billable = set(billable_customers().values_list("pk", flat=True))
    per_customer = {}
    for payment in Payment.objects.select_related("customer__package"):
        per_customer.setdefault(payment.customer_id, []).append(
            (payment.billing_year, payment.billing_month)
        )
        assert payment.bill_amount == payment.customer.package.price
    assert set(per_customer) == billable
    for records in per_customer.values():
        assert sorted(records) == sorted(months)


def test_ledger_invariant(seeded):
    zero = Value(Decimal("0"), output_field=DecimalField())
    payments = Payment.objects.annotate(
        ledger=Coalesce(Sum("collections__amount"), zero), lines=Count("collections")
    )
    assert payments.exclude(amount=F("ledger")).count() == 0
    for payment in payments:
        if payment.paid:
            assert payment.lines == 1
            assert payment.amount == payment.bill_amount > 0
            assert payment.payment_date is not None and payment.entry_by is not None
        else:
            assert payment.lines == 0 and payment.amount == 0
    for line in Collection.objects.select_related("payment"):
        assert line.kind == Collection.Kind.COLLECTION
        assert line.payment_method == line.payment.payment_method
        assert line.transaction_id == line.payment.transaction_id
        assert line.payment_date == line.payment.payment_date


def test_uniqueness(seeded):
    customers = list(Customer.objects.all())
    phones = [c.phone for c in customers]
    assert all(re.fullmatch(r"01[3-9]\d{8}", phone) for phone in phones)
    assert len(set(phones)) == len(phones)
    emails = [c.email.lower() for c in customers]
    assert len(set(emails)) == len(emails)
    usernames = [c.username for c in customers if c.username]
    assert len(set(usernames)) == len(usernames)
    uids = [c.uid for c in customers] + list(Payment.objects.values_list("uid", flat=True))
    assert len(set(uids)) == len(uids)
    trxids = Collection.objects.exclude(transaction_id="").values_list(
        "payment_method", "transaction_id"
    )
    assert len(set(trxids)) == len(trxids) > 0
    cash = Collection.objects.filter(payment_method=PaymentMethod.CASH)
    assert not cash.exclude(transaction_id="").exists()


def test_connection_types_are_mixed_and_valid(seeded):
    kinds = Counter(Customer.objects.values_list("connection_type", flat=True))
    assert set(kinds) == set(ConnectionType.values)
    for customer in Customer.objects.all():
        if customer.connection_type == ConnectionType.PPPOE:
            assert customer.username and customer.password
        elif customer.connection_type == ConnectionType.STATIC:
            ipaddress.ip_address(customer.ip_address)
        else:
            assert not customer.username


def test_admin_can_log_in_and_the_api_serves_the_data(seeded, api):
    admin = User.objects.get(phone=seed_demo.ADMIN_PHONE)
    assert admin.kind == UserKind.ADMIN and admin.is_active
    assert admin.check_password(printed_password(seeded))

    login = api.post(
        "/users/login",
        {"phone": seed_demo.ADMIN_PHONE, "password": printed_password(seeded)},
    )
    assert login.status_code == 200, login.content
    api.credentials = {"HTTP_AUTHORIZATION": f"Bearer {login.json()['access_token']}"}
    customers = api.get("/customers", {"page_size": 100})
    assert customers.status_code == 200, customers.content
    assert customers.json()["count"] == CUSTOMERS
    payments = api.get("/payments", {"page_size": 1000})
    assert payments.status_code == 200, payments.content
    assert payments.json()["count"] == billed()
    uid = customers.json()["results"][0]["uid"]
    assert api.get(f"/customers/{uid}").status_code == 200
    dashboard = api.get("/dashboard").json()
    assert dashboard["total_customers"] == CUSTOMERS
    assert dashboard["total_payments"] == Payment.objects.filter(paid=True).count()
    this_month = Payment.objects.filter(
        billing_month=dashboard["current_month"], billing_year=dashboard["current_year"]
    )
    assert this_month.count() == billed() // MONTHS
    month_billed = this_month.aggregate(s=Sum("bill_amount"))["s"]
    assert Decimal(dashboard["current_month_billed"]) == month_billed


def test_refuses_a_second_run_without_append(seeded):
    with pytest.raises(CommandError, match="already 50 customers"):
        seed()
    assert Customer.objects.count() == CUSTOMERS
    assert Payment.objects.count() == billed()


def test_append_adds_more_without_clashes(seeded):
    password = printed_password(seeded)
    output = seed(customers=10, append=True, seed=1)
    assert "password unchanged" in output
    assert User.objects.get(phone=seed_demo.ADMIN_PHONE).check_password(password)
    assert Package.objects.count() == 8  # reused
    assert Customer.objects.count() == CUSTOMERS + 10
    assert Payment.objects.count() == billed()
    for column in ("phone", "email", "username"):
        values = list(Customer.objects.exclude(**{column: ""}).values_list(column, flat=True))
        assert len(set(values)) == len(values), column
    trxids = Collection.objects.exclude(transaction_id="").values_list(
        "payment_method", "transaction_id"
    )
    assert len(set(trxids)) == len(trxids)


def test_phones_are_scattered_as_real_numbers_are(seeded):
    """Numbered in order, every phone shared most of its digits with the others, and a
    phone search over them was a scan of the whole trigram index."""
    phones = list(Customer.objects.order_by("pk").values_list("phone", flat=True))
    assert len({phone[:3] for phone in phones}) == 7  # every operator's prefix
    suffixes = [phone[3:] for phone in phones]
    assert suffixes != sorted(suffixes)
    groups = Counter(phone[i:i + 3] for phone in suffixes for i in range(6))
    assert max(groups.values()) <= len(phones) // 4, groups.most_common(3)


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_paid_ratio_extremes(db, ratio):
    seed(paid_ratio=ratio, batch=7)
    assert Payment.objects.filter(paid=True).count() == billed() * ratio
    assert Collection.objects.count() == billed() * ratio


def test_free_customers_get_no_records(db):
    seed(free_ratio=1.0, customers=5)
    assert Customer.objects.filter(is_free=True).count() == 5
    assert not Payment.objects.exists()


def test_rejects_bad_options(db):
    with pytest.raises(CommandError):
        seed(paid_ratio=1.5)
    with pytest.raises(CommandError):
        seed(customers=-1)
    assert not Customer.objects.exists()
