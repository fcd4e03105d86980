"""Input a DRF backend refused (api-contract.md, Writes and errors): a boolean is not an
id nor an integer, and text fields have lengths; each is a 400 on its field."""

from decimal import Decimal

import pytest

from billing.models import BillRun, Customer, Payment
from core.enums import UserKind
from core.timeutils import business_month
from tests.billing.factories import CustomerFactory, PackageFactory
from tests.billing.test_api_customers import body_for

pytestmark = pytest.mark.django_db

NOT_A_PK = "Incorrect type. Expected pk value, received bool."
NOT_AN_INTEGER = "A valid integer is required."


def too_long(limit: int) -> str:
    return f"Ensure this field has no more than {limit} characters."


@pytest.fixture
def client(client_as):
    return client_as(UserKind.ADMIN)[0]


@pytest.fixture
def package(db):
    return PackageFactory(price=Decimal("500.00"))


def payment_body(customer, **change):
    year, month = business_month()
    return {"customer_id": customer.pk, "amount": "100.00", "billing_month": month,
            "billing_year": year, "payment_method": "CASH", **change}


# Booleans are not ids ----------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("field", ["package_id", "user_id"])
def test_a_boolean_is_not_a_customer_reference(client, package, field, value):
    response = client.post("/customers", body_for(package, **{field: value}))

    assert response.status_code == 400, response.content
    assert response.json() == {field: [NOT_A_PK]}
    assert not Customer.objects.exists()


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_the_customer_of_a_payment(client, package, value):
    customer = CustomerFactory(package=package)

    response = client.post("/payments", payment_body(customer, customer_id=value))

    assert response.status_code == 400, response.content
    assert response.json() == {"customer_id": [NOT_A_PK]}
    assert not Payment.objects.exists()


def test_a_boolean_is_not_a_customer_of_a_bill_run(client):
    response = client.post("/customers/bills/generate", {"customer_ids": [True]})

    assert response.status_code == 400, response.content
    assert response.json() == {"customer_ids": {"0": [NOT_AN_INTEGER]}}
    assert not BillRun.objects.exists()


@pytest.mark.parametrize("body", [{"billing_year": True}, {"speed_mbps": True}])
def test_a_boolean_is_not_an_integer(client, package, body):
    if "speed_mbps" in body:
        response = client.post("/packages", {"name": "Fast", "price": "10", **body})
    else:
        response = client.post("/payments", payment_body(CustomerFactory(package=package), **body))

    assert response.status_code == 400, response.content
    assert response.json() == {next(iter(body)): [NOT_AN_INTEGER]}


def test_an_integer_id_given_as_a_number_or_a_string_still_works(client, package):
    customer = CustomerFactory(package=package)
    as_string = client.post("/payments", payment_body(customer, customer_id=str(customer.pk)))
    assert as_string.status_code == 201, as_string.content


# Text lengths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "limit"),
    [
        ("/customers", "address", 500),
        ("/payments", "note", 1000),
        ("/packages", "description", 1000),
    ],
)
def test_text_fields_have_a_length_limit(client, package, path, field, limit):
    def post(text: str):
        if path == "/customers":
            return client.post(path, body_for(package, **{field: text}))
        if path == "/payments":
            customer = CustomerFactory(package=package)
            return client.post(path, payment_body(customer, **{field: text}))
        return client.post(path, {"name": f"P{len(text)}", "speed_mbps": 5, "price": "1",
                                  field: text})

    refused = post("x" * (limit + 1))
    assert refused.status_code == 400, refused.content
    assert refused.json() == {field: [too_long(limit)]}

    huge = post("x" * 100_000)
    assert huge.status_code == 400, huge.content

    accepted = post("x" * limit)
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()[field] == "x" * limit


def test_a_payment_correction_note_has_the_same_limit(client, package):
    customer = CustomerFactory(package=package)
    created = client.post("/payments", payment_body(customer)).json()
    year, month = business_month()

    response = client.put(f"/payments/{created['uid']}", {
        "amount": "100.00", "billing_month": month, "payment_method": "CASH", "paid": False,
        "transaction_id": "", "payment_date": None, "note": "x" * 1001,
    })

    assert response.status_code == 400, response.content
    assert response.json() == {"note": [too_long(1000)]}
