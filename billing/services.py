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
from billing.audit import acting
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
    Router,
    RouterRun,
)
from billing.notifications import notify
from billing.router_runs import router_run_request
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
    profile_before = package.profile_name if package.pk else None
    for name, value in data.items():
        setattr(package, name, value)
    try:
        with transaction.atomic():
            package.save()
            if profile_before is not None and package.profile_name != profile_before:
                _sync_routers_of(package)
    except IntegrityError as error:
        raise field_error("name", "A package with this name already exists.") from error
    return package


def _sync_routers_of(package: Package) -> None:
    """A new profile for a package's customers: each of their routers syncs (one run
    for all, instead of a change per customer)."""
    on_package = Customer.objects.filter(package=package).exclude(status=Status.REMOVED)
    routers = Router.objects.filter(
        is_enabled=True, pk__in=on_package.values("router_id"),
    ).exclude(status=Status.REMOVED)
    for router in routers:
        router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None,
                           trigger="PACKAGE")


def refuse_while_customers_on(record: Package | Router, what: str) -> None:
    """A package or router with customers that are not REMOVED is not removed (400)."""
    on_it = record.customers.exclude(status=Status.REMOVED).count()
    if on_it:
        raise field_error(
            NON_FIELD_ERRORS, f"This {what} has {on_it} customer(s); move them first."
        )


def package_remove(*, package: Package) -> None:
    """Soft delete, refused while customers that are not REMOVED are on the package."""
    with transaction.atomic():
        package = Package.objects.select_for_update().get(pk=package.pk)
        refuse_while_customers_on(package, "package")
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
    move_router = "router_id" in data
    router_id = data.pop("router_id", None)

    with acting(actor), transaction.atomic():
        if customer is None:
            customer = Customer()
            was_active = True
        else:
            customer = Customer.objects.select_for_update().get(pk=customer.pk)
            was_active = customer.is_active
        enforced_before = (customer.package_id, customer.router_id) if customer.pk else None
        for name, value in data.items():
            setattr(customer, name, value)
        errors = _customer_errors(customer)
        if package is None:
            errors["package_id"] = "Invalid package: it does not exist."
        if move_router:
            router = Router.objects.exclude(status=Status.REMOVED).filter(pk=router_id).first()
            if router_id is not None and router is None:
                errors["router_id"] = "Invalid router: it does not exist."
            customer.router = router
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
        # A new customer on a router is carried out there at once (their secret created,
        # or their address blocked), not left for the next sync.
        if customer.is_active != was_active or (enforced_before is None and customer.router_id):
            connection_change_request(
                customer=customer,
                enable=customer.is_active,
                reason=ConnectionChange.Reason.UPDATE,
                requested_by=actor,
            )
        elif enforced_before not in (None, (customer.package_id, customer.router_id)):
            # Another profile, or another router to carry the connection out on.
            connection_change_request(
                customer=customer,
                enable=customer.is_active,
                reason=ConnectionChange.Reason.PACKAGE,
                requested_by=actor,
            )
    return customer


def customer_remove(*, customer: Customer, actor: User) -> None:
    """Soft delete; a removed customer's connection is switched off and their login
    account, if any, is unlinked (it is no longer a CUSTOMER)."""
    with acting(actor), transaction.atomic():
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
    with acting(actor), transaction.atomic():
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

LOCK_ORDER = """Every write of money takes its row locks in one order: the customer's row
first, then their payment records, by id (``lock_customer_records``). Whoever holds a
customer's row is the only writer of that customer's money, so two writers never each
hold a lock the other waits for (a statement locking a record with its customer, as
``select_for_update().select_related("customer")`` does, takes them in no fixed order:
PostgreSQL answered such a mix with DeadlockDetected). Bill-run chunks insert records
without the customer's lock; ``payment_record`` catches the insert it loses to one."""


def lock_customer_records(
    customer_id: int, payment_ids=(), *, live: bool = False
) -> tuple[Customer, dict[int, Payment]]:
    """Lock a customer, then the given records of theirs, in ``LOCK_ORDER``. With
    ``live`` a voided (or unknown) record raises ``Payment.DoesNotExist``."""
    # NO KEY UPDATE: writers of the customer's money still queue behind one another, but
    # inserts that only reference the customer (a bill-run chunk's records and notices
    # take KEY SHARE for their foreign key) are not held behind a money write.
    customer = (
        Customer.objects.select_for_update(of=("self",), no_key=True)
        .select_related("package")
        .get(pk=customer_id)
    )
    records = Payment.objects.select_for_update(no_key=True).filter(
        customer=customer, pk__in=payment_ids
    )
    if live:
        records = records.filter(voided_at__isnull=True)
    found = {payment.pk: payment for payment in records.order_by("pk")}
    if live and len(found) != len(set(payment_ids)):
        raise Payment.DoesNotExist("No live payment record matches the given query.")
    for payment in found.values():
        payment.customer = customer
    return customer, found


def payment_settle(payment: Payment) -> None:
    """Recompute ``amount`` from the ledger and ``paid`` from the rule."""
    total = payment.collections.filter(voided_at__isnull=True).aggregate(total=Sum("amount"))
    # Quantised: SQLite's SUM of decimals comes back without its places.
    payment.amount = (total["total"] or ZERO).quantize(CENT)
    payment.paid = payment.waived or payment.amount >= payment.bill_amount


def amount_due(payment: Payment) -> Decimal:
    """What is still owed on a record: nothing once it is paid (``payment_settle``)."""
    return ZERO if payment.paid else max(payment.bill_amount - payment.amount, ZERO)


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
    """A customer switched off is switched on again once a record of theirs is paid.
    The customer's row is locked by the caller (``LOCK_ORDER``)."""
    customer = payment.customer
    if payment.paid and not customer.is_active and customer.status != Status.REMOVED:
        customer.is_active = True
        customer.save(update_fields=["is_active", "updated_at"])  # save(): audited
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


def _live_record(customer: Customer, year: int, month: str) -> Payment | None:
    return (
        Payment.objects.select_for_update()
        .filter(customer=customer, billing_year=year, billing_month=month, voided_at__isnull=True)
        .first()
    )


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
    none. The customer and the record are locked (``LOCK_ORDER``) while its ledger and
    totals change."""
    year = billing_year or business_month()[0]
    if _trxid_taken(payment_method, transaction_id, None):
        raise field_error("transaction_id", "This transaction ID has already been recorded.")
    with acting(entered_by), transaction.atomic():
        customer, _ = lock_customer_records(customer.pk)
        payment = _live_record(customer, year, billing_month)
        if payment is None:
            try:
                with transaction.atomic():
                    payment = Payment.objects.create(
                        customer=customer,
                        billing_year=year,
                        billing_month=billing_month,
                        bill_amount=customer.package.price,
                    )
            except IntegrityError:
                # A bill-run chunk (which does not lock customers) made the month's
                # record after the look above; the money goes on that one.
                payment = _live_record(customer, year, billing_month)
                if payment is None:
                    raise
        if payment.paid:
            raise field_error(
                "billing_month", f"{billing_month} {year} is already paid for this customer."
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


def _trxid_carrier(payment: Payment) -> Collection | None:
    """The line that holds the record's transaction id, where it is unique per method:
    its last live collection or, with none (money put on a generated bill by a
    correction), its last live adjustment."""
    lines = payment.collections.filter(voided_at__isnull=True)
    return (
        lines.filter(kind=Collection.Kind.COLLECTION).last()
        or lines.filter(kind=Collection.Kind.ADJUSTMENT).last()
    )


def _line_replace(line: Collection, method: str, trxid: str, actor: User) -> None:
    """A correction of a line's method or transaction id, appended: the line stops
    counting (which frees its transaction id) and stays as staff typed it, a voided
    REVERSAL beside it shows it cancelled, and a new line carries the same money."""
    now = timezone.now()
    line.voided_at = now
    line.save(update_fields=["voided_at"])
    was = f"{line.payment_method} {line.transaction_id}".strip()
    common = {"payment": line.payment, "payment_date": line.payment_date, "recorded_by": actor,
              "source": line}
    Collection.objects.create(
        kind=Collection.Kind.REVERSAL, amount=-line.amount, payment_method=line.payment_method,
        transaction_id=line.transaction_id, note=f"Replaced: {was}", voided_at=now, **common,
    )
    Collection.objects.create(
        kind=line.kind, amount=line.amount, payment_method=method, transaction_id=trxid,
        note=f"Corrected from {was}", **common,
    )


def payment_update(*, payment: Payment, data: dict[str, Any], actor: User) -> Payment:
    """Correct a record. Nothing in the ledger is rewritten: a new ``amount`` is kept as
    an adjustment line, a new method or transaction id as a replacement of the line
    that carried the old one."""
    with acting(actor), transaction.atomic():
        customer, found = lock_customer_records(payment.customer_id, [payment.pk], live=True)
        payment = found[payment.pk]
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
                carrier = _trxid_carrier(payment)
                if carrier is not None and (carrier.payment_method, carrier.transaction_id) != (
                    method,
                    trxid,
                ):
                    _line_replace(carrier, method, trxid, actor)
                if "amount" in data and data["amount"] != payment.amount:
                    Collection.objects.create(
                        payment=payment,
                        kind=Collection.Kind.ADJUSTMENT,
                        amount=data["amount"] - payment.amount,
                        payment_method=method,
                        transaction_id=trxid if carrier is None else "",
                        payment_date=moment,
                        note=f"Corrected from {payment.amount} to {data['amount']:.2f}",
                        recorded_by=actor,
                    )
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
    """Gone from lists and totals, kept with who voided it and when. Everything derived
    from its money goes with it (``billing.ledger.credit_unwind``)."""
    # Imported here: the ledger builds on this module.
    from billing.ledger import credit_unwind

    with acting(actor), transaction.atomic():
        customer, found = lock_customer_records(payment.customer_id, [payment.pk], live=True)
        payment = found[payment.pk]
        credit_unwind(payment)
        now = timezone.now()
        payment.voided_at, payment.voided_by = now, actor
        payment.save(update_fields=["voided_at", "voided_by", "updated_at"])
        # One by one, not update(): each line's change goes to the audit trail.
        for line in payment.collections.filter(voided_at__isnull=True):
            line.voided_at = now
            line.save(update_fields=["voided_at"])
