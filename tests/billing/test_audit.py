"""Corrections append, and every money and network action is in the audit trail: who,
when, what before and after, from which request; read-only in the admin (issue 8, 3)."""

from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from billing.models import Collection, Customer, Payment
from core.enums import UserKind
from tests.billing.factories import CustomerFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REQUEST = {"REMOTE_ADDR": "203.0.113.7", "HTTP_X_CORRELATION_ID": "req-42"}


def entries(model, pk) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id=pk
        ).order_by("pk")
    )


@pytest.fixture
def customer(package):
    return CustomerFactory(package=package, username="rahim")


def pay(client, customer, **change):
    body = {"customer_id": customer.pk, "amount": "200.00", "billing_month": "MARCH",
            "billing_year": 2026, "payment_method": "BKASH", "transaction_id": "BK-FIRST"}
    body.update(change)
    response = client.post("/payments", body, **REQUEST)
    assert response.status_code == 201, response.content
    return response.json()


def test_editing_method_and_trxid_appends_and_keeps_what_staff_typed(staff, customer):
    client, user = staff
    created = pay(client, customer)
    first = Collection.objects.get(payment__uid=created["uid"])

    edit = {k: created[k] for k in ("amount", "billing_month", "paid", "payment_date", "note")}
    response = client.put(f"/payments/{created['uid']}", {
        **edit, "payment_method": "NAGAD", "transaction_id": "NG-SECOND"}, **REQUEST)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["amount"] == "200.00" and body["transaction_id"] == "NG-SECOND"
    shown = [(c["payment_method"], c["transaction_id"], c["amount"]) for c in body["collections"]]
    assert shown == [("BKASH", "BK-FIRST", "200.00"), ("BKASH", "BK-FIRST", "-200.00"),
                     ("NAGAD", "NG-SECOND", "200.00")]
    kept = Collection.objects.get(pk=first.pk)
    assert (kept.payment_method, kept.transaction_id, kept.amount, kept.recorded_by_id) == (
        "BKASH", "BK-FIRST", Decimal("200.00"), user.pk)
    assert Payment.objects.get(uid=created["uid"]).amount == Decimal("200.00")


def test_money_actions_are_logged_with_who_before_after_and_the_request(manager, customer):
    client, user = manager
    created = pay(client, customer)
    payment = Payment.objects.get(uid=created["uid"])
    line = payment.collections.get()

    [made] = entries(Collection, line.pk)
    assert made.action == LogEntry.Action.CREATE
    assert made.actor_id == user.pk
    assert made.remote_addr == "203.0.113.7"
    assert made.cid == "req-42"
    assert made.changes_dict["transaction_id"] == ["None", "BK-FIRST"]

    edit = {k: created[k] for k in ("billing_month", "payment_method", "paid",
                                    "transaction_id", "payment_date", "note")}
    put = client.put(f"/payments/{created['uid']}", {**edit, "amount": "150.00"},
                     HTTP_X_CORRELATION_ID="req-43")
    assert put.status_code == 200, put.content
    changed = entries(Payment, payment.pk)[-1]
    assert changed.action == LogEntry.Action.UPDATE
    assert changed.actor_id == user.pk and changed.cid == "req-43"
    assert changed.changes_dict["amount"] == ["200.00", "150.00"]

    assert client.delete(f"/payments/{created['uid']}").status_code == 204
    voided = entries(Payment, payment.pk)[-1]
    assert voided.actor_id == user.pk
    assert "voided_at" in voided.changes_dict
    assert all("voided_at" in e.changes_dict for e in entries(Collection, line.pk)[1:])
    assert entries(Collection, line.pk)[-1].actor_id == user.pk


def test_a_request_without_a_correlation_id_gets_one(staff, customer):
    client, _ = staff
    created = pay(client, customer)
    line = Collection.objects.get(payment__uid=created["uid"])
    client.post("/payments", {"customer_id": customer.pk, "amount": "1.00",
                              "billing_month": "APRIL", "payment_method": "CASH"})
    cids = {e.cid for e in LogEntry.objects.exclude(object_id=line.pk)
            if e.content_type.model == "collection"}
    assert len(cids) == 1 and None not in cids and "req-42" not in cids


def test_network_actions_are_logged(manager, customer):
    client, user = manager
    response = client.post("/customers/status/toggle",
                           {"username": "rahim", "is_active": False}, **REQUEST)
    assert response.status_code == 200, response.content
    change = entries(Customer, customer.pk)[-1]
    assert change.actor_id == user.pk and change.remote_addr == "203.0.113.7"
    assert change.changes_dict["is_active"] == ["True", "False"]


def test_the_pppoe_password_never_enters_the_trail(admin, customer):
    client, _ = admin
    customer.password = "new-secret-9"
    customer.save()
    assert all("password" not in e.changes_dict for e in entries(Customer, customer.pk))


@pytest.fixture
def operator(db):
    user = UserFactory(kind=UserKind.SUPER_ADMIN, is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(user)
    return browser


def test_the_admin_shows_a_customers_history_and_cannot_change_it(operator, staff, customer):
    pay(staff[0], customer)
    history = operator.get(reverse("admin:billing_customer_auditlog", args=[customer.pk]))
    assert history.status_code == 200
    page = history.content.decode()
    assert "BK-FIRST" in page  # the record's ledger line is in the customer's history

    entry = LogEntry.objects.filter(cid="req-42").first()
    change_url = reverse("admin:auditlog_logentry_change", args=[entry.pk])
    assert operator.post(change_url, {"cid": "edited"}).status_code == 403
    delete_url = reverse("admin:auditlog_logentry_delete", args=[entry.pk])
    assert operator.post(delete_url, {"post": "yes"}).status_code == 403
    bulk = operator.post(reverse("admin:auditlog_logentry_changelist"),
                         {"action": "delete_selected", "_selected_action": [entry.pk],
                          "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert LogEntry.objects.filter(pk=entry.pk, cid="req-42").exists()
