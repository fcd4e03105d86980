"""Credit moved between a customer's records: an overpaid record's surplus carried to
their next unpaid record (or their ``balance``), and a balance spent on a bill.
Every movement is a pair of ledger lines; nothing is rewritten."""

from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import ZERO, Collection, Customer, Payment
from billing.services import customer_reactivate_if_settled, payment_settle
from core.enums import BillingMonth, PaymentMethod


def _month_key(payment: Payment) -> tuple[int, int]:
    return payment.billing_year, BillingMonth(payment.billing_month).number


def _credit_line(payment: Payment, kind: str, amount: Decimal, note: str) -> None:
    Collection.objects.create(
        payment=payment, kind=kind, amount=amount, payment_method=PaymentMethod.OTHER,
        payment_date=timezone.now(), note=note,
    )


def _next_unpaid(customer: Customer, after: Payment | None) -> Payment | None:
    candidates = Payment.objects.select_for_update().filter(
        customer=customer, voided_at__isnull=True, paid=False
    )
    ordered = sorted(candidates, key=_month_key)
    if after is not None:
        ordered = [p for p in ordered if _month_key(p) > _month_key(after)]
    return ordered[0] if ordered else None


def carry_surplus(payment_id: int) -> Decimal:
    """Move one overpaid record's surplus forward; the amount moved."""
    with transaction.atomic():
        payment = Payment.objects.select_related("customer").get(pk=payment_id)
        customer = Customer.objects.select_for_update().get(pk=payment.customer_id)
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        surplus = payment.amount - payment.bill_amount
        if payment.voided_at or surplus <= 0:
            return ZERO
        label = f"{payment.billing_month} {payment.billing_year}"
        _credit_line(payment, Collection.Kind.CREDIT_OUT, -surplus, "Surplus carried forward")
        payment_settle(payment)
        payment.save(update_fields=["amount", "paid", "updated_at"])
        target = _next_unpaid(customer, after=payment)
        if target is None:
            Customer.objects.filter(pk=customer.pk).update(balance=F("balance") + surplus)
        else:
            _credit_line(target, Collection.Kind.CREDIT_IN, surplus, f"Credit from {label}")
            payment_settle(target)
            target.save(update_fields=["amount", "paid", "updated_at"])
            target.customer = customer
            customer_reactivate_if_settled(target, None)
        return surplus


def apply_balance(customer_id: int) -> Decimal:
    """Spend a customer's credit on their oldest unpaid record; the amount applied."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer_id)
        target = _next_unpaid(customer, after=None)
        if customer.balance <= 0 or target is None:
            return ZERO
        applied = min(customer.balance, target.bill_amount - target.amount)
        if applied <= 0:
            return ZERO
        _credit_line(target, Collection.Kind.CREDIT_IN, applied, "Credit from balance")
        payment_settle(target)
        target.save(update_fields=["amount", "paid", "updated_at"])
        Customer.objects.filter(pk=customer.pk).update(balance=F("balance") - applied)
        target.customer = customer
        customer_reactivate_if_settled(target, None)
        return applied
