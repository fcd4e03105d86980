"""Business rules of billing: packages, customers, payment records and their ledger.

Every write that two people can make at once locks what it changes
(``select_for_update``) and enqueues work only after the commit.
"""

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import User
from billing.connections import connection_change_request
from billing.models import (
    CENT,
    ZERO,
    Collection,
    ConnectionChange,
    Customer,
    Notification,
    Package,
    Payment,
)
from billing.notifications import notify
from core.enums import BillingMonth, ConnectionType, PaymentMethod, Status, UserKind
from core.errors import NON_FIELD_ERRORS, FieldErrors, field_error
from core.timeutils import business_month

# Packages --------------------------------------------------------------------


def _package_name_taken(name: str, exclude: Package | None) -> bool:
    others = Package.objects.exclude(status=Status.REMOVED).filter(name__iexact=name)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    return others.exists()


def package_save(*, package: Package | None = None, data: dict[str, Any]) -> Package:
    """Create or update a package; on update a field absent from ``data`` keeps its value."""
    package = package or Package()
    if _package_name_taken(data["name"], exclude=package if package.pk else None):
        raise field_error("name", "A package with this name already exists.")
    for name, value in data.items():
        setattr(package, name, value)
    try:
        with transaction.atomic():
            package.save()
    except IntegrityError as error:
        raise field_error("name", "A package with this name already exists.") from error
    return package


def package_remove(*, package: Package) -> None:
    """Soft delete, refused while customers that are not REMOVED are on the package."""
    with transaction.atomic():
        package = Package.objects.select_for_update().get(pk=package.pk)
        in_use = package.customers.exclude(status=Status.REMOVED).count()
        if in_use:
            raise field_error(
                NON_FIELD_ERRORS, f"This package has {in_use} customer(s); move them first."
            )
        package.status = Status.REMOVED
        package.save(update_fields=["status", "updated_at"])


# Customers -------------------------------------------------------------------

_CUSTOMER_UNIQUE = {"phone": "phone", "email": "email__iexact", "username": "username"}


def _customer_errors(customer: Customer, *, connection: bool = True) -> dict[str, str]:
    """What is wrong with ``customer`` as it would be saved: its connection's
    requirements (unless ``connection`` is False) and its unique fields."""
    errors: dict[str, str] = {}
    if connection and customer.connection_type == ConnectionType.PPPOE:
        for field in ("username", "password"):
            if not getattr(customer, field):
                errors[field] = "Required for a PPPoE connection."
    if connection and customer.connection_type == ConnectionType.STATIC and not customer.ip_address:
        errors["ip_address"] = "A STATIC connection needs a valid IP address."
    live = Customer.objects.exclude(status=Status.REMOVED)
    if customer.pk:
        live = live.exclude(pk=customer.pk)
    for field, lookup in _CUSTOMER_UNIQUE.items():
        value = getattr(customer, field)
        if value and live.filter(**{lookup: value}).exists():
            errors[field] = f"A customer with this {field} already exists."
    return errors


def _linkable_user(user_id: int, customer: Customer | None) -> User:
    user = User.objects.filter(pk=user_id).exclude(status=Status.REMOVED).first()
    if user is None:
        raise field_error("user_id", f'Invalid pk "{user_id}" - object does not exist.')
    if user.kind not in (UserKind.OTHER, UserKind.CUSTOMER):
        raise field_error("user_id", f"A {user.kind} account cannot be linked to a customer.")
    linked = Customer.objects.filter(user=user)
    if customer is not None:
        linked = linked.exclude(pk=customer.pk)
    if linked.exists():
        raise field_error("user_id", "This user is already linked to another customer.")
    return user


def customer_save(
    *, customer: Customer | None = None, data: dict[str, Any], actor: User
) -> Customer:
    """Create or update a customer. An update changes the fields ``data`` holds and
    leaves the others as the locked row has them, as DRF's full update left the fields
    a body omits that have defaults (an edit form that leaves out ``is_active`` must
    not switch a connection back on); ``user_id`` absent keeps the link, ``None``
    drops it."""
    data = dict(data)
    package = Package.objects.exclude(status=Status.REMOVED).filter(pk=data.pop("package_id"))
    package = package.first()
    link_user = "user_id" in data
    user_id = data.pop("user_id", None)

    with transaction.atomic():
        if customer is None:
            customer = Customer()
            was_active = True
        else:
            customer = Customer.objects.select_for_update().get(pk=customer.pk)
            was_active = customer.is_active
        for name, value in data.items():
            setattr(customer, name, value)
        errors = _customer_errors(customer)
        if package is None:
            errors["package_id"] = "Invalid package: it does not exist."
        if errors:
            raise FieldErrors(errors)
        previous_user = customer.user if customer.pk else None
        if link_user:
            user = _linkable_user(user_id, customer if customer.pk else None) if user_id else None
            customer.user = user
        customer.package = package
        try:
            with transaction.atomic():
                customer.save()
        except IntegrityError as error:
            raise FieldErrors(
                _customer_errors(customer, connection=False)
                or {NON_FIELD_ERRORS: "This customer conflicts with another one."}
            ) from error
        if customer.user and customer.user.kind != UserKind.CUSTOMER:
            User.objects.filter(pk=customer.user.pk).update(
                kind=UserKind.CUSTOMER, updated_at=timezone.now()
            )
            customer.user.kind = UserKind.CUSTOMER
        if previous_user and previous_user != customer.user:
            User.objects.filter(pk=previous_user.pk, kind=UserKind.CUSTOMER).update(
                kind=UserKind.OTHER, updated_at=timezone.now()
            )
        # A new customer is assumed enabled on the router; tell it otherwise.
        if customer.is_active != was_active:
            connection_change_request(
                customer=customer,
                enable=customer.is_active,
                reason=ConnectionChange.Reason.UPDATE,
                requested_by=actor,
            )
    return customer


def customer_remove(*, customer: Customer, actor: User) -> None:
    """Soft delete; a removed customer's connection is switched off and their login
    account, if any, is unlinked (it is no longer a CUSTOMER)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        customer.status = Status.REMOVED
        fields = ["status", "updated_at", "user"]
        if customer.user_id:
            User.objects.filter(pk=customer.user_id, kind=UserKind.CUSTOMER).update(
                kind=UserKind.OTHER, updated_at=timezone.now()
            )
            customer.user = None
        if customer.is_active:
            customer.is_active = False
            fields.append("is_active")
            connection_change_request(
                customer=customer,
                enable=False,
                reason=ConnectionChange.Reason.REMOVED,
                requested_by=actor,
            )
        customer.save(update_fields=fields)


def customer_status_set(*, username: str, is_active: bool, actor: User) -> ConnectionChange:
    """``POST /customers/status/toggle``: set ``is_active`` now, tell the router in a task."""
    with transaction.atomic():
        customer = (
            Customer.objects.select_for_update()
            .exclude(status=Status.REMOVED)
            .get(username=username)
        )
        if customer.is_active != is_active:
            customer.is_active = is_active
            customer.save(update_fields=["is_active", "updated_at"])
        # Sent even when unchanged: the router may disagree with the database.
        return connection_change_request(
            customer=customer,
            enable=is_active,
            reason=ConnectionChange.Reason.TOGGLE,
            requested_by=actor,
        )


# Payments --------------------------------------------------------------------


def payment_settle(payment: Payment) -> None:
    """Recompute ``amount`` from the ledger and ``paid`` from the rule."""
    total = payment.collections.filter(voided_at__isnull=True).aggregate(total=Sum("amount"))
    # Quantised: SQLite's SUM of decimals comes back without its places.
    payment.amount = (total["total"] or ZERO).quantize(CENT)
    payment.paid = payment.waived or payment.amount >= payment.bill_amount


def _trxid_taken(method: str, transaction_id: str, exclude_payment: Payment | None) -> bool:
    if not transaction_id:
        return False
    lines = Collection.objects.filter(
        payment_method=method, transaction_id=transaction_id, voided_at__isnull=True
    )
    if exclude_payment is not None:
        lines = lines.exclude(payment=exclude_payment)
    return lines.exists()


def customer_reactivate_if_settled(payment: Payment, actor: User | None) -> None:
    """A customer switched off is switched on again once a record of theirs is paid."""
    customer = payment.customer
    if payment.paid and not customer.is_active and customer.status != Status.REMOVED:
        Customer.objects.filter(pk=customer.pk).update(is_active=True, updated_at=timezone.now())
        customer.is_active = True
        connection_change_request(
            customer=customer,
            enable=True,
            reason=ConnectionChange.Reason.PAYMENT,
            requested_by=actor,
        )


def billable_customer_or_error(customer_id: int) -> Customer:
    customer = Customer.objects.select_related("package").filter(pk=customer_id).first()
    if customer is None or customer.status == Status.REMOVED:
        raise field_error("customer_id", f'Invalid pk "{customer_id}" - object does not exist.')
    if customer.is_free:
        raise field_error("customer_id", "This customer is free and takes no payments.")
    return customer


def payment_record(
    *,
    customer: Customer,
    amount: Decimal,
    billing_month: BillingMonth,
    billing_year: int | None,
    payment_method: PaymentMethod,
    mark_paid: bool = False,
    transaction_id: str = "",
    payment_date=None,
    note: str = "",
    entered_by: User,
) -> Payment:
    """Add money to the customer's record for the month, creating the record if there is
    none. The record is locked while its ledger and totals change."""
    year = billing_year or business_month()[0]
    if _trxid_taken(payment_method, transaction_id, None):
        raise field_error("transaction_id", "This transaction ID has already been recorded.")
    with transaction.atomic():
        # Serialises every writer of this customer's records.
        customer = (
            Customer.objects.select_for_update().select_related("package").get(pk=customer.pk)
        )
        live = Payment.objects.select_for_update().filter(
            customer=customer,
            billing_year=year,
            billing_month=billing_month,
            voided_at__isnull=True,
        )
        payment = live.first()
        if payment is not None and payment.paid:
            raise field_error(
                "billing_month", f"{billing_month} {year} is already paid for this customer."
            )
        if payment is None:
            payment = Payment.objects.create(
                customer=customer,
                billing_year=year,
                billing_month=billing_month,
                bill_amount=customer.package.price,
            )
        moment = payment_date or timezone.now()
        try:
            with transaction.atomic():
                collection = Collection.objects.create(
                    payment=payment,
                    amount=amount,
                    payment_method=payment_method,
                    transaction_id=transaction_id,
                    payment_date=moment,
                    note=note,
                    recorded_by=entered_by,
                )
        except IntegrityError as error:
            raise field_error(
                "transaction_id", "This transaction ID has already been recorded."
            ) from error
        payment.payment_method = payment_method
        payment.transaction_id = transaction_id
        payment.payment_date = moment
        if note:
            payment.note = note
        payment.entry_by = entered_by
        payment.waived = payment.waived or mark_paid
        payment_settle(payment)
        payment.save()
        payment.customer = customer
        customer_reactivate_if_settled(payment, entered_by)
        notify(
            customer=customer,
            event=Notification.Event.PAYMENT_RECEIVED,
            key=f"collection:{collection.pk}",
            payment=payment,
        )
    return payment


def payment_update(*, payment: Payment, data: dict[str, Any], actor: User) -> Payment:
    """Correct a record. A new ``amount`` is kept as an adjustment line in the ledger."""
    with transaction.atomic():
        payment = (
            Payment.objects.select_for_update()
            .select_related("customer")
            .get(pk=payment.pk, voided_at__isnull=True)
        )
        method = data.get("payment_method", payment.payment_method)
        trxid = data.get("transaction_id", payment.transaction_id)
        if (method, trxid) != (payment.payment_method, payment.transaction_id) and _trxid_taken(
            method, trxid, payment
        ):
            raise field_error("transaction_id", "This transaction ID has already been recorded.")
        month = data.get("billing_month", payment.billing_month)
        if (
            month != payment.billing_month
            and Payment.objects.filter(
                customer=payment.customer_id,
                billing_year=payment.billing_year,
                billing_month=month,
                voided_at__isnull=True,
            ).exists()
        ):
            raise field_error("billing_month", f"This customer already has a record for {month}.")
        moment = data.get("payment_date") or payment.payment_date or timezone.now()
        try:
            with transaction.atomic():
                if "amount" in data and data["amount"] != payment.amount:
                    Collection.objects.create(
                        payment=payment,
                        kind=Collection.Kind.ADJUSTMENT,
                        amount=data["amount"] - payment.amount,
                        payment_method=method,
                        payment_date=moment,
                        note=f"Corrected from {payment.amount} to {data['amount']:.2f}",
                        recorded_by=actor,
                    )
                # The record's transaction id is kept on a ledger line, where it is unique
                # per method: its last collection or, with none (money put on a generated
                # bill by a correction), its last adjustment.
                lines = payment.collections
                last = (
                    lines.filter(kind=Collection.Kind.COLLECTION).last()
                    or lines.filter(kind=Collection.Kind.ADJUSTMENT).last()
                )
                if last is not None and (last.payment_method, last.transaction_id) != (
                    method,
                    trxid,
                ):
                    last.payment_method, last.transaction_id = method, trxid
                    last.save(update_fields=["payment_method", "transaction_id"])
                payment.billing_month = month
                payment.payment_method = method
                payment.transaction_id = trxid
                payment.payment_date = moment
                payment.note = data.get("note", payment.note)
                if "paid" in data:
                    payment.waived = data["paid"]
                payment_settle(payment)
                payment.save()
        except IntegrityError as error:
            raise field_error(
                "transaction_id", "This transaction ID has already been recorded."
            ) from error
        customer_reactivate_if_settled(payment, actor)
    return payment


def payment_void(*, payment: Payment, actor: User) -> None:
    """Gone from lists and totals, kept with who voided it and when."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk, voided_at__isnull=True)
        now = timezone.now()
        payment.voided_at, payment.voided_by = now, actor
        payment.save(update_fields=["voided_at", "voided_by", "updated_at"])
        payment.collections.update(voided_at=now)
