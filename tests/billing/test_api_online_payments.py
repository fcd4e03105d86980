"""The online-payments API over HTTP (api-contract.md "Online payments", "Roles", "Lists",
"Writes and errors"): who may see what, a customer's own bills and starting a payment
of them, the staff list, and refunds through the fake bKash (tests/payments)."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import OnlinePayment, Payment
from core.enums import OnlineState, UserKind
from tests.billing.factories import CustomerFactory, PackageFactory
from tests.billing.shapes import (
    CUSTOMER_BASE_KEYS,
    LOCAL_TIMESTAMP,
    PAYMENT_LIST_KEYS,
    assert_money,
    assert_page,
    assert_payment,
)
from tests.conftest import ApiClient

pytestmark = pytest.mark.django_db

State = OnlineState
ONLINE_KEYS = {
    "id", "uid", "customer", "provider", "state", "amount", "currency",
    "provider_payment_id", "transaction_id", "payment_uids", "created_at", "updated_at",
}
STARTED_KEYS = ONLINE_KEYS | {"redirect_url"}
# Nothing listens on port 9 (discard): connection refused at once.
DEAD_BKASH = {"BKASH_BASE_URL": "http://127.0.0.1:9", "BKASH_APP_KEY": "k",
              "BKASH_APP_SECRET": "s", "BKASH_USERNAME": "u", "BKASH_PASSWORD": "p"}


def assert_online(body: dict, keys=ONLINE_KEYS) -> None:
    assert set(body) == keys, set(body) ^ keys
    assert set(body["customer"]) == CUSTOMER_BASE_KEYS, set(body["customer"]) ^ CUSTOMER_BASE_KEYS
    assert_money(body["amount"])
    for field in ("created_at", "updated_at"):
        assert LOCAL_TIMESTAMP.match(body[field]), body[field]
    for field in ("currency", "provider_payment_id", "transaction_id"):
        assert isinstance(body[field], str), (field, body[field])
    assert all(isinstance(uid, str) for uid in body["payment_uids"])
    uuid.UUID(body["uid"])


def bill(customer, month="MAY", year=2026, amount=None, **fields) -> Payment:
    return Payment.objects.create(customer=customer, billing_year=year, billing_month=month,
                                  bill_amount=amount or customer.package.price, **fields)


def online(customer, records, *, state=State.REDIRECTED, amount=None, trx="",
           provider="BKASH") -> OnlinePayment:
    total = amount or sum((r.bill_amount - r.amount for r in records), Decimal("0.00"))
    row = OnlinePayment.objects.create(
        customer=customer, provider=provider, amount=total, state=state,
        invoice_number=uuid.uuid4().hex[:20].upper(), provider_payment_id=uuid.uuid4().hex,
        transaction_id=trx or (uuid.uuid4().hex[:10].upper()
                               if state in (State.SUCCEEDED, State.REFUNDED) else ""),
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    row.payments.set(records)
    return row


@pytest.fixture
def world(make_user):
    """``own`` (linked to a CUSTOMER user, ``owner``) and ``other``, each with bills."""
    package = PackageFactory(price=Decimal("500.00"))
    owner = make_user(kind=UserKind.CUSTOMER)
    own = CustomerFactory(package=package, user=owner, name="Rahim Uddin", phone="01711000001")
    other = CustomerFactory(package=package, name="Karim Mia", phone="01711000002")
    return {"package": package, "owner": owner, "own": own, "other": other}


@pytest.fixture
def as_owner(world):
    return ApiClient().bearer(world["owner"])


# Roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, status", [
    (UserKind.SUPER_ADMIN, 200), (UserKind.ADMIN, 200), (UserKind.MANAGER, 200),
    (UserKind.STAFF, 403), (UserKind.OTHER, 403), (UserKind.CUSTOMER, 404),
])
def test_who_may_read_online_payments(client_as, world, kind, status):
    row = online(world["other"], [bill(world["other"])])
    client, _ = client_as(kind)
    listed = client.get("/online-payments")
    detail = client.get(f"/online-payments/{row.uid}")
    assert (listed.status_code, detail.status_code) == (status, status), (
        listed.content, detail.content)
    if status == 200:
        assert [r["uid"] for r in listed.json()["results"]] == [str(row.uid)]
        assert detail.json()["uid"] == str(row.uid)
    else:
        assert set(listed.json()) == {"detail"} and set(detail.json()) == {"detail"}


def test_a_customer_is_not_told_about_their_own_payments_on_the_staff_routes(as_owner, world):
    row = online(world["own"], [bill(world["own"])])
    assert as_owner.get("/online-payments").status_code == 404
    assert as_owner.get(f"/online-payments/{row.uid}").status_code == 404
    assert as_owner.post(f"/online-payments/{row.uid}/refund", {}).status_code == 404


def test_no_credentials_is_401_everywhere(api, world):
    row = online(world["own"], [bill(world["own"])])
    for method, path in [("get", "/online-payments"), ("get", f"/online-payments/{row.uid}"),
                         ("post", f"/online-payments/{row.uid}/refund"),
                         ("get", "/me/bills"), ("post", "/me/bills/pay")]:
        response = getattr(api, method)(path)
        assert response.status_code == 401, (path, response.content)
        assert "WWW-Authenticate" in response.headers, path
        assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("kind, status", [
    (UserKind.MANAGER, 403), (UserKind.STAFF, 403), (UserKind.OTHER, 403),
    (UserKind.CUSTOMER, 404),
])
def test_only_admins_refund(client_as, world, kind, status):
    row = online(world["other"], [bill(world["other"])], state=State.SUCCEEDED)
    client, _ = client_as(kind)
    with override_settings(**DEAD_BKASH):
        response = client.post(f"/online-payments/{row.uid}/refund", {})
    assert response.status_code == status, response.content
    row.refresh_from_db()
    assert row.refunded_amount == Decimal("0.00") and row.state == State.SUCCEEDED
    assert row.events.count() == 0


# GET /me/bills -------------------------------------------------------------------------


def test_my_bills_are_my_unpaid_live_records_oldest_first(as_owner, world):
    own, other = world["own"], world["other"]
    may, june = bill(own, "MAY"), bill(own, "JUNE")
    january = bill(own, "JANUARY", 2027)
    bill(own, "APRIL", paid=True, amount=Decimal("0.00"))
    bill(own, "MARCH", voided_at=timezone.now())
    bill(other, "MAY")
    bill(other, "FEBRUARY")
    response = as_owner.get("/me/bills")
    assert response.status_code == 200, response.content
    body = response.json()
    assert_page(body)
    assert body["count"] == 3 and body["next"] is None and body["previous"] is None
    assert [r["uid"] for r in body["results"]] == [str(may.uid), str(june.uid),
                                                   str(january.uid)]
    for row in body["results"]:
        assert_payment(row, PAYMENT_LIST_KEYS)
        assert row["customer_id"] == own.pk and row["customer"]["id"] == own.pk
        assert row["paid"] is False and row["bill_amount"] == "500.00"
        assert row["amount"] == "0.00"


def test_my_bills_oldest_first_whatever_order_they_were_made_in(as_owner, world):
    # Bills created out of month order (a late bill run, a record staff added for a
    # month that was missed): "oldest first" is by billing month, not by creation.
    own = world["own"]
    june = bill(own, "JUNE")
    may = bill(own, "MAY")
    march = bill(own, "MARCH")
    body = as_owner.get("/me/bills").json()
    assert [r["billing_month"] for r in body["results"]] == ["MARCH", "MAY", "JUNE"]
    assert [r["uid"] for r in body["results"]] == [str(march.uid), str(may.uid), str(june.uid)]


def test_my_bills_paginate_as_every_list(as_owner, world):
    own = world["own"]
    for month in ("JANUARY", "FEBRUARY", "MARCH"):
        bill(own, month)
    first = as_owner.get("/me/bills?page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2
    assert first["next"].startswith("http") and "page=2" in first["next"]
    second = as_owner.get("/me/bills?page_size=2&page=2").json()
    assert len(second["results"]) == 1 and second["previous"].startswith("http")
    past = as_owner.get("/me/bills?page=9")
    assert past.status_code == 404 and past.json() == {"detail": "Invalid page."}


def test_a_customer_user_with_no_customer_record_gets_404(client_as):
    client, _ = client_as(UserKind.CUSTOMER)
    assert client.get("/me/bills").status_code == 404
    assert client.post("/me/bills/pay", {"provider": "BKASH"}).status_code == 404


@pytest.mark.parametrize("kind", [UserKind.SUPER_ADMIN, UserKind.ADMIN, UserKind.MANAGER,
                                  UserKind.STAFF, UserKind.OTHER])
def test_staff_kinds_have_no_bills_of_their_own(client_as, world, kind):
    bill(world["own"])
    client, _ = client_as(kind)
    listed = client.get("/me/bills")
    paid = client.post("/me/bills/pay", {"provider": "BKASH"})
    assert (listed.status_code, paid.status_code) == (403, 403), (listed.content, paid.content)
    assert OnlinePayment.objects.count() == 0


# POST /me/bills/pay: refusals ------------------------------------------------------------


def test_pay_with_the_provider_switched_off_is_400_on_provider(as_owner, world):
    bill(world["own"])
    with override_settings(BKASH_BASE_URL=""):
        response = as_owner.post("/me/bills/pay", {"provider": "BKASH"})
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"provider"} and response.json()["provider"]
    assert OnlinePayment.objects.count() == 0


@pytest.mark.parametrize("provider", ["NAGAD", "SSLCOMMERZ", "PAYPAL", "bkash", "", None, 1])
def test_pay_with_a_provider_that_is_not_on_or_not_one_is_400(as_owner, world, provider):
    bill(world["own"])
    with override_settings(**DEAD_BKASH):
        response = as_owner.post("/me/bills/pay", {"provider": provider})
    assert response.status_code == 400, response.content
    assert "provider" in response.json()
    assert OnlinePayment.objects.count() == 0


def test_pay_without_a_provider_is_400(as_owner, world):
    bill(world["own"])
    response = as_owner.post("/me/bills/pay", {})
    assert response.status_code == 400 and "provider" in response.json()


def test_pay_someone_elses_or_a_paid_or_voided_bill_is_400_on_payment_uids(as_owner, world):
    own, other = world["own"], world["other"]
    mine = bill(own, "MAY")
    theirs = bill(other, "MAY")
    paid = bill(own, "APRIL", paid=True)
    voided = bill(own, "MARCH", voided_at=timezone.now())
    with override_settings(**DEAD_BKASH):
        for uids in ([str(theirs.uid)], [str(mine.uid), str(theirs.uid)], [str(paid.uid)],
                     [str(voided.uid)], [str(uuid.uuid4())], []):
            response = as_owner.post("/me/bills/pay", {"provider": "BKASH",
                                                       "payment_uids": uids})
            assert response.status_code == 400, (uids, response.content)
            assert set(response.json()) == {"payment_uids"}, (uids, response.json())
        junk = as_owner.post("/me/bills/pay", {"provider": "BKASH", "payment_uids": ["x"]})
        assert junk.status_code == 400 and "payment_uids" in junk.json()
    assert OnlinePayment.objects.count() == 0


def test_pay_when_nothing_is_owed_is_400(as_owner, world):
    bill(world["own"], "APRIL", paid=True)
    with override_settings(**DEAD_BKASH):
        response = as_owner.post("/me/bills/pay", {"provider": "BKASH"})
    assert response.status_code == 400, response.content
    assert response.json() == {"non_field_errors": ["Nothing is owed."]}
    assert OnlinePayment.objects.count() == 0


def test_pay_when_bkash_does_not_answer_is_503_and_the_row_failed(as_owner, world):
    bill(world["own"])
    with override_settings(**DEAD_BKASH):
        response = as_owner.post("/me/bills/pay", {"provider": "BKASH"})
    assert response.status_code == 503, response.content
    assert set(response.json()) == {"detail"}
    row = OnlinePayment.objects.get()
    assert row.state == State.FAILED and "did not answer" in row.error
    assert row.events.get().kind == "CREATE"


# GET /online-payments: the list ------------------------------------------------------------


@pytest.fixture
def listed(world):
    own, other = world["own"], world["other"]
    a = online(own, [bill(own, "MAY")], state=State.SUCCEEDED, trx="TRXAAA0001")
    b = online(own, [bill(own, "JUNE"), bill(own, "JULY")], state=State.REDIRECTED)
    c = online(other, [bill(other, "MAY", amount=Decimal("1234.50"))], state=State.FAILED)
    return a, b, c


def test_the_list_shape_field_by_field(admin_client, listed, world):
    a, b, c = listed
    body = admin_client.get("/online-payments").json()
    assert_page(body)
    assert body["count"] == 3
    assert [r["uid"] for r in body["results"]] == [str(c.uid), str(b.uid), str(a.uid)]
    for row in body["results"]:
        assert_online(row)
    first = body["results"][2]
    own = world["own"]
    assert first == {
        "id": a.pk, "uid": str(a.uid),
        "customer": {"id": own.pk, "uid": str(own.uid), "name": own.name, "email": own.email,
                     "phone": own.phone, "address": own.address, "nid": own.nid,
                     "is_free": False},
        "provider": "BKASH", "state": "SUCCEEDED", "amount": "500.00", "currency": "BDT",
        "provider_payment_id": a.provider_payment_id, "transaction_id": "TRXAAA0001",
        "payment_uids": [str(p.uid) for p in a.payments.order_by("pk")],
        "created_at": first["created_at"], "updated_at": first["updated_at"],
    }
    assert body["results"][1]["amount"] == "1000.00"
    assert body["results"][1]["payment_uids"] == [str(p.uid) for p in b.payments.order_by("pk")]
    assert body["results"][1]["transaction_id"] == ""
    assert body["results"][0]["amount"] == "1234.50"
    assert admin_client.get(f"/online-payments/{a.uid}").json() == first


def test_the_list_filters(admin_client, listed, world):
    a, b, c = listed

    def uids(query):
        response = admin_client.get(f"/online-payments?{query}")
        assert response.status_code == 200, (query, response.content)
        return {r["uid"] for r in response.json()["results"]}

    assert uids("state=SUCCEEDED") == {str(a.uid)}
    assert uids("state=FAILED") == {str(c.uid)}
    assert uids("state=REFUNDED") == set()
    assert uids("provider=BKASH") == {str(a.uid), str(b.uid), str(c.uid)}
    assert uids("provider=NAGAD") == set()
    assert uids(f"customer_id={world['own'].pk}") == {str(a.uid), str(b.uid)}
    assert uids(f"customer_id={world['other'].pk}&state=FAILED") == {str(c.uid)}
    assert uids("customer_id=999999") == set()
    for bad in ("state=PAID", "provider=PAYPAL", "customer_id=abc", "customer_id=1e99",
                "customer_id=99999999999999999999", "search=%00", "state=%00"):
        response = admin_client.get(f"/online-payments?{bad}")
        assert response.status_code == 400, (bad, response.content)


def test_the_list_search(admin_client, listed, world):
    a, b, c = listed

    def uids(term):
        response = admin_client.get("/online-payments", {"search": term})
        assert response.status_code == 200, response.content
        return {r["uid"] for r in response.json()["results"]}

    assert uids("Karim") == {str(c.uid)}
    assert uids("rahim") == {str(a.uid), str(b.uid)}
    assert uids("01711000002") == {str(c.uid)}
    assert uids("TRXAAA0001") == {str(a.uid)}
    assert uids(b.invoice_number) == {str(b.uid)}
    assert uids("nobody-at-all") == set()


def test_the_list_ordering(admin_client, listed):
    a, b, c = listed

    def order(value):
        response = admin_client.get("/online-payments", {"ordering": value})
        assert response.status_code == 200, response.content
        return [r["uid"] for r in response.json()["results"]]

    assert order("amount") == [str(a.uid), str(b.uid), str(c.uid)]
    assert order("-amount") == [str(c.uid), str(b.uid), str(a.uid)]
    assert order("created_at") == [str(a.uid), str(b.uid), str(c.uid)]
    assert order("-created_at") == [str(c.uid), str(b.uid), str(a.uid)]
    assert admin_client.get("/online-payments", {"ordering": "secret"}).status_code == 400


def test_the_list_pages(admin_client, listed):
    a, b, c = listed
    first = admin_client.get("/online-payments?page_size=2").json()
    assert first["count"] == 3 and [r["uid"] for r in first["results"]] == [str(c.uid),
                                                                           str(b.uid)]
    assert first["previous"] is None and first["next"].startswith("http://")
    assert "page=2" in first["next"] and "page_size=2" in first["next"]
    second = admin_client.get(first["next"].split("testserver", 1)[1]).json()
    assert [r["uid"] for r in second["results"]] == [str(a.uid)] and second["next"] is None
    assert admin_client.get("/online-payments?page=3&page_size=2").json() == {
        "detail": "Invalid page."}
    # DRF's page_size outside 1..1000 falls back to the default, as on every list.
    fallback = admin_client.get("/online-payments?page_size=0")
    assert fallback.status_code == 200 and len(fallback.json()["results"]) == 3


def test_the_list_costs_the_same_queries_at_page_size_1_and_1000(admin_client, world):
    own = world["own"]
    for n in range(12):
        online(own, [bill(own, "MAY", year=2000 + n), bill(own, "JUNE", year=2000 + n)])
    # The first request checks the password (later the cache) and counts a full page.
    admin_client.get("/online-payments", {"page_size": 1})
    counts = []
    for page_size in (1, 1000):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get("/online-payments", {"page_size": page_size})
        assert response.status_code == 200
        assert len(response.json()["results"]) == (1 if page_size == 1 else 12)
        assert all(len(r["payment_uids"]) == 2 for r in response.json()["results"])
        counts.append(len(queries))
    # The signed-in user, the count's key (the tables' latest change; the count itself is
    # cached), the page of rows with their customers, the record uids; a last page read
    # whole needs no count at all.
    assert counts == [4, 3], counts
