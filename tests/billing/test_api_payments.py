"""Payment records: collecting money, the ledger, corrections, voiding, filters."""

from decimal import Decimal

import pytest

from billing.models import Collection, ConnectionChange, Payment
from core.enums import BillingMonth, PaymentMethod, Status, UserKind
from core.timeutils import business_month
from tests.billing.factories import CustomerFactory, PackageFactory, PaymentFactory
from tests.billing.shapes import (
    PAYMENT_DETAIL_KEYS,
    PAYMENT_LIST_KEYS,
    USER_LITE_KEYS,
    assert_page,
    assert_payment,
)

pytestmark = pytest.mark.django_db

COLLECTION_PARTS = {"amount", "payment_method", "transaction_id", "payment_date",
                    "recorded_by", "created_at"}


@pytest.fixture
def customer(package):
    return CustomerFactory(package=package, name="Rahim Uddin", phone="01711000001")


def guide_body(customer, **change):
    """The integration guide's "Creating a Payment" example."""
    body = {
        "customer_id": customer.id,
        "amount": "50.00",
        "billing_month": "JANUARY",
        "payment_method": "BKASH",
        "paid": True,
        "transaction_id": "TXN123456",
        "note": "Monthly payment",
    }
    body.update(change)
    return body


def user_lite(user) -> dict:
    return {
        "id": user.id,
        "uid": str(user.uid),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "phone": user.phone,
        "email": user.email,
    }


# Creating ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER, UserKind.STAFF])
def test_guide_example_creates_a_paid_record(client_as, customer, kind):
    client, user = client_as(kind)

    response = client.post("/payments", guide_body(customer))

    assert response.status_code == 201, response.content
    body = response.json()
    assert_payment(body, PAYMENT_DETAIL_KEYS)
    year, _ = business_month()
    payment = Payment.objects.get(uid=body["uid"])
    assert body["id"] == payment.id
    assert body["customer_id"] == customer.id
    assert body["customer"] == {
        "id": customer.id,
        "uid": str(customer.uid),
        "name": "Rahim Uddin",
        "email": customer.email,
        "phone": "01711000001",
        "address": customer.address,
        "nid": customer.nid,
        "is_free": False,
    }
    assert body["entry_by"] == user_lite(user)
    assert set(body["entry_by"]) == USER_LITE_KEYS
    assert body["bill_amount"] == "500.00"  # the package price
    assert body["amount"] == "50.00"
    assert body["paid"] is True  # marked paid by staff: a waiver
    assert body["billing_month"] == "JANUARY"
    assert body["billing_year"] == year
    assert body["payment_method"] == "BKASH"
    assert body["transaction_id"] == "TXN123456"
    assert body["note"] == "Monthly payment"
    assert body["payment_date"] is not None
    assert len(body["collections"]) == 1
    line = body["collections"][0]
    assert COLLECTION_PARTS <= set(line)
    assert line["amount"] == "50.00"
    assert line["payment_method"] == "BKASH"
    assert line["transaction_id"] == "TXN123456"
    assert line["recorded_by"] == user_lite(user)

    assert payment.customer_id == customer.id
    assert payment.amount == Decimal("50.00")
    assert payment.bill_amount == Decimal("500.00")
    assert payment.paid is True
    assert payment.entry_by_id == user.id
    assert payment.billing_year == year
    assert payment.collections.count() == 1


@pytest.mark.parametrize("amount, shown", [(500, "500.00"), (50.5, "50.50"), ("75", "75.00"),
                                           ("75.5", "75.50"), ("0.01", "0.01")])
def test_amount_as_number_or_string(admin_client, customer, amount, shown):
    response = admin_client.post(
        "/payments", guide_body(customer, amount=amount, paid=False, transaction_id="")
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["amount"] == shown
    assert body["paid"] is (Decimal(shown) >= Decimal("500"))
    assert Payment.objects.get().amount == Decimal(shown)


def test_full_amount_settles_without_waiver(admin_client, customer):
    body = admin_client.post(
        "/payments", guide_body(customer, amount="500", paid=False)
    ).json()
    assert body["paid"] is True
    payment = Payment.objects.get()
    assert payment.paid is True and payment.waived is False


def test_money_is_added_to_an_existing_unpaid_record(admin_client, staff, customer):
    year, _ = business_month()
    record = PaymentFactory(customer=customer, billing_year=year,
                            billing_month=BillingMonth.MARCH, amount=Decimal("0"))
    assert record.paid is False
    client, staff_user = staff

    first = admin_client.post("/payments", guide_body(
        customer, amount="200", billing_month="MARCH", paid=False, transaction_id="A1"))
    assert first.status_code == 201, first.content
    assert first.json()["uid"] == str(record.uid)
    assert first.json()["amount"] == "200.00"
    assert first.json()["paid"] is False

    second = client.post("/payments", guide_body(
        customer, amount=300, billing_month="MARCH", paid=False, transaction_id="A2",
        payment_method="CASH"))
    assert second.status_code == 201, second.content
    body = second.json()
    assert body["uid"] == str(record.uid)
    assert body["amount"] == "500.00"
    assert body["paid"] is True
    assert body["entry_by"]["id"] == staff_user.id  # who last recorded money
    assert body["payment_method"] == "CASH"
    assert [line["amount"] for line in body["collections"]] == ["200.00", "300.00"]
    assert Payment.objects.count() == 1
    record.refresh_from_db()
    assert record.amount == Decimal("500.00") and record.paid is True


def test_already_paid_record_is_400_on_billing_month(admin_client, customer):
    year, _ = business_month()
    PaymentFactory(customer=customer, billing_year=year, billing_month=BillingMonth.JANUARY,
                   amount=Decimal("500"))
    response = admin_client.post("/payments", guide_body(customer))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["billing_month"]
    assert Collection.objects.count() == 1


def test_explicit_billing_year(admin_client, customer):
    response = admin_client.post("/payments", guide_body(customer, billing_year=2024))
    assert response.status_code == 201, response.content
    assert response.json()["billing_year"] == 2024
    assert Payment.objects.get().billing_year == 2024


@pytest.mark.parametrize("which", ["unknown", "removed", "free"])
def test_customer_that_takes_no_payment_is_400_on_customer_id(admin_client, package, which):
    if which == "unknown":
        customer_id = 987654
    else:
        customer_id = CustomerFactory(
            package=package,
            status=Status.REMOVED if which == "removed" else Status.ACTIVE,
            is_free=which == "free",
        ).id
    response = admin_client.post("/payments", {**guide_body_ids(customer_id)})
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["customer_id"]
    assert not Payment.objects.exists()


def guide_body_ids(customer_id):
    return {"customer_id": customer_id, "amount": "50.00", "billing_month": "JANUARY",
            "payment_method": "BKASH", "paid": True, "transaction_id": "TXN123456"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"amount": 0}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": "-0.01"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"amount": 1.001}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "Infinity"}, "amount"),
        ({"amount": None}, "amount"),
        ({"amount": "12345678901234"}, "amount"),
        ({"billing_month": "JANUARYY"}, "billing_month"),
        ({"billing_month": "january"}, "billing_month"),
        ({"payment_method": "PAYPAL"}, "payment_method"),
        ({"billing_year": 1999}, "billing_year"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"paid": "sometimes"}, "paid"),
        ({"payment_date": "15/01/2026"}, "payment_date"),
    ],
)
def test_invalid_values_are_400_on_the_field(admin_client, customer, change, field):
    response = admin_client.post("/payments", guide_body(customer, **change))
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field], body
    assert all(isinstance(message, str) for message in body[field])
    assert not Payment.objects.exists()


@pytest.mark.parametrize("missing", ["customer_id", "amount", "billing_month", "payment_method"])
def test_missing_required_field_is_400(admin_client, customer, missing):
    body = guide_body(customer)
    del body[missing]
    response = admin_client.post("/payments", body)
    assert response.status_code == 400, response.content
    assert response.json() == {missing: ["This field is required."]}


def test_unknown_enum_message_names_the_value(admin_client, customer):
    response = admin_client.post("/payments", guide_body(customer, payment_method="PAYPAL"))
    assert response.json() == {"payment_method": ['"PAYPAL" is not a valid choice.']}


def test_duplicate_transaction_id_for_the_same_method_is_400(admin_client, customer, package):
    other = CustomerFactory(package=package)
    assert admin_client.post("/payments", guide_body(customer)).status_code == 201

    response = admin_client.post("/payments", guide_body(other, billing_month="FEBRUARY"))

    assert response.status_code == 400, response.content
    assert list(response.json()) == ["transaction_id"]
    assert Payment.objects.count() == 1


def test_duplicate_transaction_id_on_the_same_record_is_400(admin_client, customer):
    first = admin_client.post("/payments", guide_body(customer, amount="100", paid=False))
    assert first.status_code == 201
    response = admin_client.post("/payments", guide_body(customer, amount="100", paid=False))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["transaction_id"]
    assert Payment.objects.get().amount == Decimal("100.00")


def test_same_transaction_id_with_another_method_is_accepted(admin_client, customer, package):
    other = CustomerFactory(package=package)
    assert admin_client.post("/payments", guide_body(customer)).status_code == 201
    response = admin_client.post("/payments", guide_body(other, payment_method="NAGAD"))
    assert response.status_code == 201, response.content
    assert response.json()["transaction_id"] == "TXN123456"


def test_empty_transaction_ids_are_not_duplicates(admin_client, customer, package):
    other = CustomerFactory(package=package)
    for who in (customer, other):
        response = admin_client.post("/payments", guide_body(who, transaction_id=""))
        assert response.status_code == 201, response.content


def test_bare_payment_date_is_that_day_in_the_business_timezone(admin_client, customer):
    response = admin_client.post("/payments", guide_body(customer, payment_date="2026-01-15"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["payment_date"].startswith("2026-01-15T")
    assert body["payment_date"].endswith("+06:00")
    assert body["collections"][0]["payment_date"].startswith("2026-01-15T")
    # Read back later, the day is the same.
    again = admin_client.get(f"/payments/{body['uid']}").json()
    assert again["payment_date"] == body["payment_date"]


def test_utc_payment_timestamp_comes_back_in_the_business_timezone(admin_client, customer):
    response = admin_client.post(
        "/payments", guide_body(customer, payment_date="2026-01-15T20:30:00Z")
    )
    assert response.status_code == 201, response.content
    assert response.json()["payment_date"] == "2026-01-16T02:30:00+06:00"


def test_payment_date_defaults_to_now(admin_client, customer):
    body = admin_client.post("/payments", guide_body(customer)).json()
    assert body["payment_date"] is not None


# Through the customer's URL ---------------------------------------------------------


def test_post_customer_payments_needs_no_customer_id(staff, customer):
    client, user = staff
    body = guide_body(customer)
    del body["customer_id"]

    response = client.post(f"/customers/{customer.uid}/payments", body)

    assert response.status_code == 201, response.content
    out = response.json()
    assert_payment(out, PAYMENT_DETAIL_KEYS)
    assert out["customer_id"] == customer.id
    assert out["entry_by"]["id"] == user.id
    assert Payment.objects.get().customer_id == customer.id


def test_post_customer_payments_for_a_free_customer_is_400(admin_client, package):
    free = CustomerFactory(package=package, is_free=True)
    body = guide_body(free)
    del body["customer_id"]
    response = admin_client.post(f"/customers/{free.uid}/payments", body)
    assert response.status_code == 400, response.content
    assert not Payment.objects.exists()


def test_post_customer_payments_for_unknown_customer_is_404(admin_client, package):
    removed = CustomerFactory(package=package, status=Status.REMOVED)
    body = guide_body(removed)
    del body["customer_id"]
    assert admin_client.post(f"/customers/{removed.uid}/payments", body).status_code == 404


def test_get_customer_payments_lists_only_that_customers(admin_client, customer, package):
    mine = [
        PaymentFactory(customer=customer, billing_month=BillingMonth.JANUARY),
        PaymentFactory(customer=customer, billing_month=BillingMonth.FEBRUARY),
    ]
    PaymentFactory(customer=CustomerFactory(package=package))
    PaymentFactory(customer=customer, billing_month=BillingMonth.MARCH,
                   voided_at="2026-01-01T00:00:00Z")

    response = admin_client.get(f"/customers/{customer.uid}/payments")

    assert response.status_code == 200, response.content
    body = response.json()
    assert_page(body)
    assert body["count"] == 2
    assert [row["uid"] for row in body["results"]] == [str(p.uid) for p in reversed(mine)]
    for row in body["results"]:
        assert_payment(row, PAYMENT_LIST_KEYS)


# Reading --------------------------------------------------------------------------------


def test_list_shape_and_detail_shape(admin_client, customer, make_user):
    collector = make_user(kind=UserKind.STAFF)
    payment = PaymentFactory(customer=customer, amount=Decimal("500"), entry_by=collector)

    listed = admin_client.get("/payments")
    detail = admin_client.get(f"/payments/{payment.uid}")

    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert_page(body)
    assert body["count"] == 1
    assert_payment(body["results"][0], PAYMENT_LIST_KEYS)
    assert body["results"][0]["entry_by"] == user_lite(collector)
    assert detail.status_code == 200, detail.content
    assert_payment(detail.json(), PAYMENT_DETAIL_KEYS)
    assert detail.json()["amount"] == "500.00"
    assert len(detail.json()["collections"]) == 1


def test_list_rows_show_what_the_detail_shows(admin_client, customer, make_user):
    """List pages are read as rows, details as models: both render a record alike,
    a record nobody entered (a bill run's) with ``entry_by`` null."""
    collector = make_user(kind=UserKind.STAFF)
    entered = PaymentFactory(customer=customer, amount=Decimal("120.50"), entry_by=collector,
                             billing_month=BillingMonth.JANUARY, transaction_id="TX-1")
    billed = PaymentFactory(customer=customer, billing_month=BillingMonth.FEBRUARY)

    rows = {row["uid"]: row for row in admin_client.get("/payments").json()["results"]}

    for payment in (entered, billed):
        detail = admin_client.get(f"/payments/{payment.uid}").json()
        assert rows[str(payment.uid)] == {key: detail[key] for key in PAYMENT_LIST_KEYS}
    assert rows[str(billed.uid)]["entry_by"] is None
    assert rows[str(entered.uid)]["entry_by"] == user_lite(collector)


def test_unknown_payment_is_404(admin_client):
    response = admin_client.get("/payments/7b0c3c7e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# Correcting ----------------------------------------------------------------------------


def put_body(payment_json, **change):
    body = {k: payment_json[k] for k in ("amount", "billing_month", "payment_method", "paid",
                                         "transaction_id", "payment_date", "note")}
    body.update(change)
    return body


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER, UserKind.STAFF])
def test_put_changing_amount_keeps_an_adjustment(client_as, admin_client, customer, kind):
    created = admin_client.post(
        "/payments", guide_body(customer, amount="300", paid=False)
    ).json()
    client, user = client_as(kind)

    response = client.put(f"/payments/{created['uid']}",
                          put_body(created, amount="450.00", note="fixed", id=1, uid="x"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert_payment(body, PAYMENT_DETAIL_KEYS)
    assert body["uid"] == created["uid"]
    assert body["amount"] == "450.00"
    assert body["paid"] is False
    assert body["note"] == "fixed"
    kinds = [line.get("kind") for line in body["collections"]]
    assert kinds == ["COLLECTION", "ADJUSTMENT"]
    assert [line["amount"] for line in body["collections"]] == ["300.00", "150.00"]
    assert body["collections"][1]["recorded_by"]["id"] == user.id
    total = sum(Decimal(line["amount"]) for line in body["collections"])
    assert total == Decimal(body["amount"])
    payment = Payment.objects.get(uid=created["uid"])
    assert payment.amount == Decimal("450.00")
    assert payment.collections.count() == 2

    down = client.put(f"/payments/{created['uid']}", put_body(body, amount=100))
    assert down.status_code == 200, down.content
    down = down.json()
    assert down["amount"] == "100.00"
    assert [line["amount"] for line in down["collections"]] == ["300.00", "150.00", "-350.00"]
    assert sum(Decimal(line["amount"]) for line in down["collections"]) == Decimal("100.00")


def test_put_raising_amount_to_the_bill_settles_it(admin_client, customer):
    created = admin_client.post(
        "/payments", guide_body(customer, amount="300", paid=False)
    ).json()
    body = admin_client.put(f"/payments/{created['uid']}",
                            put_body(created, amount="500")).json()
    assert body["paid"] is True


def test_put_marking_paid_is_a_waiver_and_unmarking_undoes_it(admin_client, customer):
    created = admin_client.post(
        "/payments", guide_body(customer, amount="100", paid=False)
    ).json()
    marked = admin_client.put(f"/payments/{created['uid']}", put_body(created, paid=True))
    assert marked.status_code == 200, marked.content
    assert marked.json()["paid"] is True
    assert marked.json()["amount"] == "100.00"
    assert len(marked.json()["collections"]) == 1  # no money moved
    unmarked = admin_client.put(f"/payments/{created['uid']}", put_body(created, paid=False))
    assert unmarked.json()["paid"] is False


def test_put_with_a_taken_transaction_id_is_400(admin_client, customer, package):
    other = CustomerFactory(package=package)
    admin_client.post("/payments", guide_body(other, transaction_id="TAKEN"))
    created = admin_client.post("/payments", guide_body(customer, transaction_id="MINE")).json()
    response = admin_client.put(f"/payments/{created['uid']}",
                                put_body(created, transaction_id="TAKEN"))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["transaction_id"]
    assert Payment.objects.get(uid=created["uid"]).transaction_id == "MINE"


def test_put_moving_to_a_month_that_has_a_record_is_400(admin_client, customer):
    feb = admin_client.post("/payments", guide_body(customer, billing_month="FEBRUARY",
                                                    transaction_id="")).json()
    admin_client.post("/payments", guide_body(customer, billing_month="MARCH",
                                              transaction_id=""))
    response = admin_client.put(f"/payments/{feb['uid']}", put_body(feb, billing_month="MARCH"))
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["billing_month"]


@pytest.mark.parametrize("change, field", [({"amount": -1}, "amount"),
                                           ({"amount": "x"}, "amount"),
                                           ({"billing_month": "SMARCH"}, "billing_month"),
                                           ({"payment_method": "GOLD"}, "payment_method")])
def test_put_invalid_is_400(admin_client, customer, change, field):
    created = admin_client.post("/payments", guide_body(customer)).json()
    response = admin_client.put(f"/payments/{created['uid']}", put_body(created, **change))
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]


# Voiding --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [UserKind.ADMIN, UserKind.MANAGER])
def test_delete_voids_the_record(client_as, admin_client, customer, kind):
    created = admin_client.post("/payments", guide_body(customer)).json()
    client, user = client_as(kind)

    response = client.delete(f"/payments/{created['uid']}")

    assert response.status_code == 204, response.content
    assert response.content == b""
    assert admin_client.get(f"/payments/{created['uid']}").status_code == 404
    assert admin_client.get("/payments").json()["count"] == 0
    assert admin_client.get(f"/customers/{customer.uid}/payments").json()["count"] == 0
    assert client.delete(f"/payments/{created['uid']}").status_code == 404
    payment = Payment.objects.get(uid=created["uid"])  # kept
    assert payment.voided_at is not None
    assert payment.voided_by_id == user.id
    assert payment.amount == Decimal("50.00")

    # Its transaction id, and its month, are free again.
    again = admin_client.post("/payments", guide_body(customer))
    assert again.status_code == 201, again.content
    assert again.json()["uid"] != created["uid"]
    assert Payment.objects.count() == 2


# Re-activation ----------------------------------------------------------------------------


def test_inactive_customer_is_reactivated_when_a_record_becomes_paid(
    admin, package, django_capture_on_commit_callbacks
):
    client, user = admin
    customer = CustomerFactory(package=package, is_active=False, username="late")

    partial = client.post("/payments", guide_body(customer, amount="100", paid=False))
    assert partial.status_code == 201, partial.content
    customer.refresh_from_db()
    assert customer.is_active is False
    assert not ConnectionChange.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        rest = client.post("/payments", guide_body(customer, amount="400", paid=False,
                                                   transaction_id="TXN2"))
    assert rest.status_code == 201, rest.content
    assert rest.json()["paid"] is True
    customer.refresh_from_db()
    assert customer.is_active is True
    change = ConnectionChange.objects.get(customer=customer)
    assert change.enable is True
    assert change.reason == ConnectionChange.Reason.PAYMENT
    assert change.requested_by == user
    assert change.confirmed_at is not None


def test_inactive_customer_is_reactivated_by_a_waiver_on_put(admin_client, package):
    customer = CustomerFactory(package=package, is_active=False)
    created = admin_client.post("/payments",
                                guide_body(customer, amount="100", paid=False)).json()
    assert Payment.objects.get().paid is False
    admin_client.put(f"/payments/{created['uid']}", put_body(created, paid=True))
    customer.refresh_from_db()
    assert customer.is_active is True


# Filters --------------------------------------------------------------------------------


@pytest.fixture
def filter_rows(make_user):
    year, _ = business_month()
    alice = make_user(kind=UserKind.STAFF, first_name="Alice")
    bob = make_user(kind=UserKind.STAFF, first_name="Bob")
    karim = CustomerFactory(name="Karim Ahmed", phone="01800000001")
    rahim = CustomerFactory(name="Rahim Uddin", phone="01800000002")
    rows = {
        "k_jan": PaymentFactory(customer=karim, billing_year=year,
                                billing_month=BillingMonth.JANUARY, amount=Decimal("500"),
                                payment_method=PaymentMethod.BKASH, entry_by=alice),
        "k_feb": PaymentFactory(customer=karim, billing_year=year,
                                billing_month=BillingMonth.FEBRUARY, amount=Decimal("0"),
                                payment_method=PaymentMethod.OTHER),
        "r_jan": PaymentFactory(customer=rahim, billing_year=year,
                                billing_month=BillingMonth.JANUARY, amount=Decimal("500"),
                                payment_method=PaymentMethod.CASH, entry_by=bob),
        "r_old": PaymentFactory(customer=rahim, billing_year=year - 1,
                                billing_month=BillingMonth.DECEMBER, amount=Decimal("200"),
                                payment_method=PaymentMethod.CASH, entry_by=alice),
    }
    return rows, karim, rahim, year


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"customer_name": "ahmed"}, {"k_jan", "k_feb"}),
        ({"customer_phone": "01800000002"}, {"r_jan", "r_old"}),
        ({"customer_phone": "0180000000"}, set()),
        ({"collected_by": "ali"}, {"k_jan", "r_old"}),
        ({"collected_by": "BOB"}, {"r_jan"}),
        ({"month": "JANUARY"}, {"k_jan", "r_jan"}),
        ({"paid": "true"}, {"k_jan", "r_jan"}),
        ({"paid": "false"}, {"k_feb", "r_old"}),
        ({"payment_method": "CASH"}, {"r_jan", "r_old"}),
        ({"month": "JANUARY", "collected_by": "bob"}, {"r_jan"}),
    ],
)
def test_list_filters(admin_client, filter_rows, params, expected):
    rows = filter_rows[0]
    response = admin_client.get("/payments", params)
    assert response.status_code == 200, response.content
    found = {row["uid"] for row in response.json()["results"]}
    assert found == {str(rows[key].uid) for key in expected}


def test_list_filters_by_year_and_customer(admin_client, filter_rows):
    rows, karim, _, year = filter_rows
    by_year = admin_client.get("/payments", {"billing_year": year - 1}).json()
    assert {row["uid"] for row in by_year["results"]} == {str(rows["r_old"].uid)}
    by_customer = admin_client.get("/payments", {"customer_id": karim.id}).json()
    assert {row["uid"] for row in by_customer["results"]} == {
        str(rows["k_jan"].uid), str(rows["k_feb"].uid)
    }


@pytest.mark.parametrize("params, field", [({"month": "JANUARYY"}, "month"),
                                           ({"paid": "perhaps"}, "paid"),
                                           ({"payment_method": "GOLD"}, "payment_method")])
def test_list_bad_filter_value_is_400(admin_client, params, field):
    response = admin_client.get("/payments", params)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]


def test_list_is_newest_first(admin_client, filter_rows):
    rows = filter_rows[0]
    body = admin_client.get("/payments").json()
    assert [row["uid"] for row in body["results"]] == [
        str(rows[key].uid) for key in ("r_old", "r_jan", "k_feb", "k_jan")
    ]


def test_bill_amount_follows_the_package_price(admin_client):
    pricey = PackageFactory(price=Decimal("1234.50"))
    customer = CustomerFactory(package=pricey)
    body = admin_client.post("/payments", guide_body(customer, paid=False)).json()
    assert body["bill_amount"] == "1234.50"
    assert body["paid"] is False


def test_put_changing_transaction_id_frees_the_old_one(admin_client, customer, package):
    created = admin_client.post("/payments", guide_body(customer, transaction_id="OLD")).json()
    changed = admin_client.put(f"/payments/{created['uid']}",
                               put_body(created, transaction_id="NEW"))
    assert changed.status_code == 200, changed.content
    assert changed.json()["transaction_id"] == "NEW"
    # Appended, not rewritten: the TrxID staff typed first stays in the ledger.
    lines = [(line["kind"], line["amount"], line["transaction_id"])
             for line in changed.json()["collections"]]
    assert lines == [("COLLECTION", "50.00", "OLD"), ("REVERSAL", "-50.00", "OLD"),
                     ("COLLECTION", "50.00", "NEW")]
    assert sum(Decimal(line[1]) for line in lines) == Decimal(changed.json()["amount"])
    assert Payment.objects.get(uid=created["uid"]).amount == Decimal("50.00")
    other = CustomerFactory(package=package)
    assert admin_client.post("/payments", guide_body(other, transaction_id="OLD")).status_code \
        == 201
    assert admin_client.post("/payments", guide_body(
        other, billing_month="MAY", transaction_id="NEW")).status_code == 400


def test_transaction_id_set_by_put_on_a_generated_bill_is_unique(admin_client, customer,
                                                                  package):
    """A generated bill has no money yet; collecting on it by PUT records the TrxID too."""
    year, month = business_month()
    bill = PaymentFactory(customer=customer, billing_year=year, billing_month=month,
                          payment_method=PaymentMethod.OTHER, payment_date=None)
    assert bill.collections.count() == 0
    shown = admin_client.get(f"/payments/{bill.uid}").json()

    response = admin_client.put(f"/payments/{bill.uid}", put_body(
        shown, amount="500.00", payment_method="BKASH", transaction_id="TRX-GEN-1"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["amount"] == "500.00" and body["paid"] is True
    assert body["transaction_id"] == "TRX-GEN-1"
    assert sum(Decimal(line["amount"]) for line in body["collections"]) == Decimal("500.00")
    other = CustomerFactory(package=package)
    duplicate = admin_client.post("/payments", guide_body(
        other, payment_method="BKASH", transaction_id="TRX-GEN-1"))
    assert duplicate.status_code == 400, duplicate.content
    assert list(duplicate.json()) == ["transaction_id"]


def test_customer_url_wins_over_a_customer_id_in_the_body(admin_client, customer, package):
    other = CustomerFactory(package=package)
    response = admin_client.post(f"/customers/{customer.uid}/payments",
                                 guide_body(other))
    assert response.status_code == 201, response.content
    assert response.json()["customer_id"] == customer.id
    assert not Payment.objects.filter(customer=other).exists()


def test_bill_amount_is_the_price_when_the_record_was_made(admin_client, customer, package):
    created = admin_client.post("/payments", guide_body(customer, amount="100",
                                                        paid=False)).json()
    package.price = Decimal("900.00")
    package.save()
    again = admin_client.post("/payments", guide_body(customer, amount="100", paid=False,
                                                      transaction_id="T2")).json()
    assert again["uid"] == created["uid"]
    assert again["bill_amount"] == "500.00"
    assert again["amount"] == "200.00"
    fresh = admin_client.post("/payments", guide_body(customer, billing_month="MAY",
                                                      transaction_id="T3")).json()
    assert fresh["bill_amount"] == "900.00"


@pytest.mark.parametrize("query", [{"billing_year": "-1"}, {"billing_year": "70000"}])
def test_a_filter_no_record_can_match_is_an_empty_page(admin_client, customer, query):
    """Values outside the column's range: Django knows no row matches, before any SQL."""
    PaymentFactory(customer=customer)

    listed = admin_client.get("/payments", query)
    of_customer = admin_client.get(f"/customers/{customer.uid}/payments", query)

    for response in (listed, of_customer):
        assert response.status_code == 200, response.content
        assert response.json()["count"] == 0 and response.json()["results"] == []


def test_a_customer_id_outside_64_bits_is_400_on_the_field(admin_client, customer):
    listed = admin_client.get("/payments", {"customer_id": str(2**63)})
    created = admin_client.post("/payments", guide_body(customer, customer_id=2**63))

    for response in (listed, created):
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["customer_id"]


@pytest.mark.parametrize("moment", ["0001-01-01", "9999-12-31T23:59:59-12:00", "1999-12-31"])
def test_a_payment_date_outside_the_business_years_is_400(admin_client, customer, moment):
    response = admin_client.post("/payments", guide_body(customer, payment_date=moment))

    assert response.status_code == 400, response.content
    assert response.json() == {
        "payment_date": ["Enter a date between the years 2000 and 2100."]
    }
    assert not Payment.objects.exists()


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_amount_is_400(admin_client, customer, amount):
    response = admin_client.post("/payments", guide_body(customer, amount=amount))
    assert response.status_code == 400, response.content
    assert response.json() == {"amount": ["A valid number is required."]}
