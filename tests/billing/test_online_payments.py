"""Online payments' rules, driven by provider answers given directly (the provider's
protocol is tested against the fake bKash in tests/payments): money lands once, only on
a completed answer that matches what was asked, and the state machine holds."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from billing.ledger import ledger_invariant_errors
from billing.models import (
    Collection,
    ConnectionChange,
    Customer,
    Notification,
    OnlinePayment,
    OnlinePaymentEvent,
    Package,
    Payment,
)
from billing.online_payments import MAY_BECOME, online_payment_apply, open_bills
from billing.pay_links import customer_of_pay_token, pay_link, pay_token
from billing.providers import Outcome, Status
from core.enums import OnlineState, PaymentMethod
from tests.factories import UserFactory

State = OnlineState


def _customer(price="500.00", **extra) -> Customer:
    package = Package.objects.create(name=f"P{uuid.uuid4().hex[:6]}", speed_mbps=10,
                                     price=Decimal(price))
    return Customer.objects.create(name="Rahim", phone=f"017{uuid.uuid4().int % 10**8:08d}",
                                   package=package, **extra)


def _bill(customer, month="MAY", year=2026, amount=None) -> Payment:
    return Payment.objects.create(customer=customer, billing_year=year, billing_month=month,
                                  bill_amount=amount or customer.package.price)


def _online(customer, records, *, state=State.REDIRECTED, amount=None) -> OnlinePayment:
    total = amount or sum((r.bill_amount - r.amount for r in records), Decimal("0.00"))
    online = OnlinePayment.objects.create(
        customer=customer, provider="BKASH", amount=total, state=state,
        invoice_number=uuid.uuid4().hex[:20].upper(), provider_payment_id=uuid.uuid4().hex,
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    online.payments.set(records)
    return online


def _completed(online, trx="TRX0000001", **change) -> Outcome:
    fields = {"transaction_id": trx, "amount": online.amount, "currency": "BDT",
              "invoice_number": online.invoice_number, "answer": {"trxID": trx}}
    fields.update(change)
    return Outcome(Status.COMPLETED, **fields)


@pytest.mark.django_db
def test_a_completed_answer_pays_the_bill_switches_the_customer_on_and_writes_the_notice(
    django_capture_on_commit_callbacks,
):
    customer = _customer(is_active=False, email="r@example.com")
    bill = _bill(customer)
    online = _online(customer, [bill])
    with django_capture_on_commit_callbacks(execute=False):
        online_payment_apply(online.pk, _completed(online), "CONFIRM")
    online.refresh_from_db()
    bill.refresh_from_db()
    customer.refresh_from_db()
    assert online.state == State.SUCCEEDED and online.transaction_id == "TRX0000001"
    assert bill.paid and bill.amount == Decimal("500.00")
    line = bill.collections.get()
    assert (line.amount, line.payment_method, line.transaction_id, line.online_payment_id) == (
        Decimal("500.00"), PaymentMethod.BKASH, "TRX0000001", online.pk)
    assert customer.is_active
    change = ConnectionChange.objects.get(customer=customer)
    assert change.enable and change.reason == ConnectionChange.Reason.PAYMENT
    notices = Notification.objects.filter(customer=customer,
                                          event=Notification.Event.PAYMENT_RECEIVED)
    assert sorted(notices.values_list("channel", flat=True)) == ["EMAIL", "SMS"]
    assert ledger_invariant_errors(customer.pk) == []
    assert list(online.events.values_list("kind", "state_before", "state_after")) == [
        ("CONFIRM", "REDIRECTED", "SUCCEEDED")]


@pytest.mark.django_db
def test_the_same_answer_again_changes_nothing():
    customer = _customer()
    bill = _bill(customer)
    online = _online(customer, [bill])
    for kind in ("CONFIRM", "WEBHOOK", "QUERY", "CONFIRM"):
        online_payment_apply(online.pk, _completed(online), kind)
    bill.refresh_from_db()
    assert bill.collections.count() == 1 and bill.amount == Decimal("500.00")
    assert Notification.objects.filter(event="PAYMENT_RECEIVED").count() == 1
    assert ledger_invariant_errors(customer.pk) == []


@pytest.mark.django_db
@pytest.mark.parametrize("change, reported", [
    ({"amount": Decimal("499.99")}, "amount 499.99"),
    ({"currency": "USD"}, "currency USD"),
    ({"invoice_number": "SOMEONE-ELSES"}, "invoice SOMEONE-ELSES"),
    ({"invoice_number": ""}, "invoice none"),  # an answer that names no payment
    ({"amount": None}, "amount None"),  # not an amount (NaN, junk)
])
def test_a_completed_answer_that_differs_from_what_was_asked_is_never_money(change, reported):
    customer = _customer()
    bill = _bill(customer)
    online = _online(customer, [bill])
    online_payment_apply(online.pk, _completed(online, **change), "EXECUTE")
    online.refresh_from_db()
    bill.refresh_from_db()
    assert online.state == State.FAILED
    assert reported in online.error and "not credited" in online.error
    assert not bill.paid and bill.collections.count() == 0
    assert online.events.get().data == {"trxID": "TRX0000001"}


@pytest.mark.django_db
@pytest.mark.parametrize("ended", [State.EXPIRED, State.CANCELLED, State.FAILED])
def test_the_providers_late_word_that_it_holds_the_money_is_credited(ended):
    customer = _customer()
    bill = _bill(customer)
    online = _online(customer, [bill], state=ended)
    online_payment_apply(online.pk, _completed(online), "WEBHOOK")
    online.refresh_from_db()
    bill.refresh_from_db()
    assert online.state == State.SUCCEEDED and bill.paid


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_a_failure_after_success_changes_nothing(status):
    customer = _customer()
    bill = _bill(customer)
    online = _online(customer, [bill])
    online_payment_apply(online.pk, _completed(online), "CONFIRM")
    online_payment_apply(online.pk, Outcome(status, answer={"late": True}), "CALLBACK")
    online.refresh_from_db()
    bill.refresh_from_db()
    assert online.state == State.SUCCEEDED and bill.paid and bill.collections.count() == 1
    assert online.events.last().state_after == State.SUCCEEDED


def test_the_state_machine_never_leaves_a_refund_and_never_unpays():
    assert MAY_BECOME[State.REFUNDED] == set()
    assert MAY_BECOME[State.SUCCEEDED] == {State.REFUNDED}
    for state, targets in MAY_BECOME.items():
        assert state not in targets
        if state in (State.FAILED, State.CANCELLED, State.EXPIRED):
            assert State.SUCCEEDED in targets


@pytest.mark.django_db
def test_a_payment_of_several_bills_settles_each_and_puts_a_surplus_on_the_last():
    customer = _customer()
    may, june = _bill(customer, "MAY"), _bill(customer, "JUNE")
    online = _online(customer, [june, may])  # 1000.00
    # Meanwhile staff took 200.00 in cash on May: 200.00 more than is owed arrives.
    staff = UserFactory(kind="MANAGER")
    from billing.services import payment_record

    payment_record(customer=customer, amount=Decimal("200.00"), billing_month="MAY",
                   billing_year=2026, payment_method="CASH", entered_by=staff)
    online_payment_apply(online.pk, _completed(online), "CONFIRM")
    may.refresh_from_db()
    june.refresh_from_db()
    assert may.paid and may.amount == Decimal("500.00")
    assert june.paid and june.amount == Decimal("700.00")  # the surplus: credit for later
    assert set(Collection.objects.filter(online_payment=online)
               .values_list("payment_id", "amount")) == {
        (may.pk, Decimal("300.00")), (june.pk, Decimal("700.00"))}
    assert ledger_invariant_errors(customer.pk) == []


@pytest.mark.django_db
def test_money_for_voided_bills_lands_on_the_customers_open_bill():
    customer = _customer()
    may, june = _bill(customer, "MAY"), _bill(customer, "JUNE")
    online = _online(customer, [may])
    Payment.objects.filter(pk=may.pk).update(voided_at=timezone.now())
    online_payment_apply(online.pk, _completed(online), "CONFIRM")
    june.refresh_from_db()
    assert june.paid and june.collections.get().online_payment_id == online.pk


@pytest.mark.django_db
def test_a_transaction_id_credited_on_one_payment_is_refused_on_another():
    customer = _customer()
    first = _online(customer, [_bill(customer, "MAY")])
    second = _online(customer, [_bill(customer, "JUNE")])
    online_payment_apply(first.pk, _completed(first, trx="SAMETRX001"), "CONFIRM")
    online_payment_apply(second.pk, _completed(second, trx="SAMETRX001"), "CONFIRM")
    second.refresh_from_db()
    assert second.state == State.FAILED and "SAMETRX001 is recorded already" in second.error
    assert Collection.objects.filter(transaction_id="SAMETRX001").count() == 1
    assert ledger_invariant_errors(customer.pk) == []


@pytest.mark.django_db
def test_the_database_refuses_a_second_line_of_one_payment_on_a_record():
    customer = _customer()
    bill = _bill(customer)
    online = _online(customer, [bill])
    line = {"payment": bill, "amount": Decimal("1.00"), "payment_method": "BKASH",
            "payment_date": timezone.now(), "online_payment": online}
    Collection.objects.create(**line, transaction_id="A1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Collection.objects.create(**line, transaction_id="A2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Collection.objects.create(**{**line, "amount": Decimal("5.00")}, kind="REFUND")
    with pytest.raises(IntegrityError), transaction.atomic():
        OnlinePayment.objects.filter(pk=online.pk).update(state=State.SUCCEEDED)


@pytest.mark.django_db
def test_the_event_log_is_append_only():
    customer = _customer()
    online = _online(customer, [_bill(customer)])
    online_payment_apply(online.pk, Outcome(Status.FAILED, answer={"x": 1}), "QUERY")
    event = OnlinePaymentEvent.objects.get()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        OnlinePaymentEvent.objects.filter(pk=event.pk).update(kind="EDITED")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        event.delete()


@pytest.mark.django_db
def test_open_bills_are_the_live_unpaid_ones_oldest_first():
    customer = _customer()
    june, may = _bill(customer, "JUNE"), _bill(customer, "MAY")
    _bill(customer, "JANUARY", year=2027)
    paid = _bill(customer, "APRIL")
    Payment.objects.filter(pk=paid.pk).update(paid=True)
    voided = _bill(customer, "MARCH")
    Payment.objects.filter(pk=voided.pk).update(voided_at=timezone.now())
    assert [(b.billing_month, b.billing_year) for b in open_bills(customer)] == [
        ("MAY", 2026), ("JUNE", 2026), ("JANUARY", 2027)]
    assert may.pk != june.pk


@pytest.mark.django_db
def test_a_pay_link_names_its_customer_and_nothing_else():
    customer = _customer()
    token = pay_token(customer)
    assert pay_link(customer).endswith(f"/pay/{token}")
    assert customer_of_pay_token(token) == customer
    assert customer_of_pay_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert customer_of_pay_token(uuid.uuid4().hex) is None
    assert customer_of_pay_token("") is None
    with override_settings(PAY_LINK_DAYS=0):
        time.sleep(1.1)
        assert customer_of_pay_token(token) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_confirmations_of_one_payment_credit_it_once():
    customer = _customer(is_active=False)
    bill = _bill(customer)
    online = _online(customer, [bill])
    outcome = _completed(online)
    start = threading.Barrier(50)

    def confirm(kind):
        try:
            start.wait()
            online_payment_apply(online.pk, outcome, kind)
        finally:
            connection.close()

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(confirm, ["CONFIRM", "WEBHOOK", "QUERY", "CONFIRM", "CALLBACK"] * 10))
    bill.refresh_from_db()
    online.refresh_from_db()
    assert online.state == State.SUCCEEDED
    assert bill.collections.count() == 1 and bill.amount == Decimal("500.00") and bill.paid
    assert ConnectionChange.objects.filter(customer=customer).count() == 1
    assert Notification.objects.filter(customer=customer, event="PAYMENT_RECEIVED").count() == 1
    assert online.events.filter(state_after=State.SUCCEEDED, state_before=State.REDIRECTED) \
        .count() == 1
    assert ledger_invariant_errors(customer.pk) == []
