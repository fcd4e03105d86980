from uuid import UUID

from ninja import Body, Query, Router, Schema, Status
from ninja.pagination import paginate

from billing import bills, router_runs, selectors, services
from billing import online_payments as pay_service
from billing import routers as router_services
from billing.models import Customer as CustomerModel
from billing.models import OnlinePayment as OnlinePaymentModel
from billing.models import Router as RouterModel
from billing.models import RouterRun
from billing.schemas import (
    BillGenerateAccepted,
    BillGenerateIn,
    CustomerDetail,
    CustomerList,
    CustomerWrite,
    Dashboard,
    OnlinePaymentOut,
    OnlinePaymentStarted,
    PackageDetail,
    PackageList,
    PackageWrite,
    PayIn,
    PaymentCreate,
    PaymentDetail,
    PaymentIn,
    PaymentList,
    PaymentUpdate,
    RefundIn,
    RouterDetail,
    RouterDrift,
    RouterImportIn,
    RouterWrite,
    RunAccepted,
    StatusToggleIn,
    TaskAccepted,
    TaskStatus,
)
from core.enums import BillingMonth, OnlineProvider, OnlineState, PaymentMethod, UserKind
from core.errors import ServiceUnavailable
from core.listing import ListParams, filters_apply, ordering_apply, search_filter
from core.permissions import require
from core.schemas import BillingYear, DbInt

packages = Router(tags=["packages"])
customers = Router(tags=["customers"])
payments = Router(tags=["payments"])
dashboard = Router(tags=["dashboard"])
tasks = Router(tags=["tasks"])
routers = Router(tags=["routers"])


# Packages --------------------------------------------------------------------

PACKAGE_ORDERING = {
    "created_at": "created_at",
    "name": "name",
    "price": "price",
    "speed_mbps": "speed_mbps",
    "customer_count": "customer_count",
}


@packages.get("", auth=None, response=list[PackageList])
@paginate
def package_list(request, params: Query[ListParams]):
    found = search_filter(selectors.package_list(), params.search, ("name", "description"))
    return ordering_apply(found, params.ordering, PACKAGE_ORDERING)


@packages.post("", response={201: PackageDetail})
def package_create(request, payload: PackageWrite):
    require(request.auth, "packages.write")
    package = services.package_save(data=payload.dict())
    return Status(201, selectors.package_list().get(pk=package.pk))


@packages.get("/{uid}", auth=None, response=PackageDetail)
def package_detail(request, uid: UUID):
    return selectors.package_list().get(uid=uid)


@packages.put("/{uid}", response=PackageDetail)
def package_update(request, uid: UUID, payload: PackageWrite):
    require(request.auth, "packages.write")
    package = services.package_save(
        package=selectors.package_list().get(uid=uid), data=payload.dict(exclude_unset=True)
    )
    return selectors.package_list().get(pk=package.pk)


@packages.delete("/{uid}", response={204: None})
def package_delete(request, uid: UUID):
    require(request.auth, "packages.delete")
    services.package_remove(package=selectors.package_list().get(uid=uid))
    return Status(204, None)


# Customers -------------------------------------------------------------------


class CustomerFilters(ListParams):
    name: str | None = None
    phone: str | None = None
    username: str | None = None
    package_id: DbInt | None = None
    user_id: DbInt | None = None
    is_active: bool | None = None
    is_free: bool | None = None


CUSTOMER_SEARCH = ("name", "phone", "email", "username", "address", "nid")
CUSTOMER_ORDERING = {
    "created_at": "created_at",
    "name": "name",
    "phone": "phone",
    "username": "username",
    "connection_start_date": "connection_start_date",
}


CUSTOMER_FILTERS = {
    "name": "name__icontains",
    "phone": "phone",
    "username": "username__icontains",
    "package_id": "package_id",
    "user_id": "user_id",
    "is_active": "is_active",
    "is_free": "is_free",
}


def _filter_customers(found, filters: CustomerFilters):
    found = filters_apply(found, filters, CUSTOMER_FILTERS)
    found = search_filter(found, filters.search, CUSTOMER_SEARCH)
    return ordering_apply(found, filters.ordering, CUSTOMER_ORDERING)


@packages.get("/{uid}/customers", response=list[CustomerList])
@paginate
def package_customers(request, uid: UUID, filters: Query[CustomerFilters]):
    require(request.auth, "customers.read")
    package = selectors.package_list().get(uid=uid)
    found = selectors.customer_page(viewer=request.auth).filter(package=package)
    return _filter_customers(found, filters)


@customers.get("", response=list[CustomerList])
@paginate
def customer_list(request, filters: Query[CustomerFilters]):
    require(request.auth, "customers.read")
    return _filter_customers(selectors.customer_page(viewer=request.auth), filters)


@customers.post("", response={201: CustomerDetail})
def customer_create(request, payload: CustomerWrite):
    require(request.auth, "customers.create")
    customer = services.customer_save(data=payload.dict(), actor=request.auth)
    return Status(201, selectors.customer_detail_list(viewer=request.auth).get(pk=customer.pk))


@customers.post("/status/toggle", response=TaskAccepted)
def customer_status_toggle(request, payload: StatusToggleIn):
    require(request.auth, "customers.toggle")
    change = services.customer_status_set(
        username=payload.username, is_active=payload.is_active, actor=request.auth
    )
    state = "enabled" if payload.is_active else "disabled"
    return {"message": f"Connection of {payload.username} {state}.", "task_id": change.task_id}


class BillGenerateParams(Schema):
    month: BillingMonth | None = None
    year: BillingYear | None = None


@customers.post("/bills/generate", response={202: BillGenerateAccepted})
def bills_generate(
    request,
    params: Query[BillGenerateParams],
    payload: BillGenerateIn | None = Body(None),  # noqa: B008 (ninja's way to declare it)
):
    require(request.auth, "bills.generate")
    run = bills.bill_run_start(
        requested_by=request.auth,
        year=params.year,
        month=params.month,
        customer_ids=payload.customer_ids if payload else None,
    )
    return Status(
        202,
        {
            "message": f"Bill generation for {run.billing_month} {run.billing_year} started.",
            "task_id": run.task_id,
            "billing_month": run.billing_month,
            "billing_year": run.billing_year,
        },
    )


@customers.get("/{uid}", response=CustomerDetail)
def customer_detail(request, uid: UUID):
    require(request.auth, "customers.read")
    return selectors.customer_detail_list(viewer=request.auth).get(uid=uid)


@customers.put("/{uid}", response=CustomerDetail)
def customer_update(request, uid: UUID, payload: CustomerWrite):
    require(request.auth, "customers.update")
    customer = selectors.customer_list(viewer=request.auth).get(uid=uid)
    services.customer_save(
        customer=customer, data=payload.dict(exclude_unset=True), actor=request.auth
    )
    return selectors.customer_detail_list(viewer=request.auth).get(pk=customer.pk)


@customers.delete("/{uid}", response={204: None})
def customer_delete(request, uid: UUID):
    require(request.auth, "customers.delete")
    customer = selectors.customer_list(viewer=request.auth).get(uid=uid)
    services.customer_remove(customer=customer, actor=request.auth)
    return Status(204, None)


# Payments --------------------------------------------------------------------


class PaymentFilters(ListParams):
    customer_name: str | None = None
    customer_phone: str | None = None
    collected_by: str | None = None
    month: BillingMonth | None = None
    paid: bool | None = None
    billing_year: DbInt | None = None
    payment_method: PaymentMethod | None = None
    customer_id: DbInt | None = None


PAYMENT_SEARCH = ("customer__name", "customer__phone", "transaction_id", "note")
PAYMENT_ORDERING = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "payment_date": "payment_date",
    "amount": "amount",
    "bill_amount": "bill_amount",
    "billing_year": "billing_year",
}


PAYMENT_FILTERS = {
    "customer_name": "customer__name__icontains",
    "customer_phone": "customer__phone",
    "collected_by": "entry_by__first_name__icontains",
    "month": "billing_month",
    "paid": "paid",
    "billing_year": "billing_year",
    "payment_method": "payment_method",
    "customer_id": "customer_id",
}


def _filter_payments(found, filters: PaymentFilters):
    found = filters_apply(found, filters, PAYMENT_FILTERS)
    found = search_filter(found, filters.search, PAYMENT_SEARCH)
    return ordering_apply(found, filters.ordering, PAYMENT_ORDERING)


def _record(request, customer, payload: PaymentIn):
    return services.payment_record(
        customer=customer,
        amount=payload.amount,
        billing_month=payload.billing_month,
        billing_year=payload.billing_year,
        payment_method=payload.payment_method,
        mark_paid=payload.paid,
        transaction_id=payload.transaction_id,
        payment_date=payload.payment_date,
        note=payload.note,
        entered_by=request.auth,
    )


@payments.get("", response=list[PaymentList])
@paginate
def payment_list(request, filters: Query[PaymentFilters]):
    require(request.auth, "payments.read")
    return _filter_payments(selectors.payment_page(viewer=request.auth), filters)


@payments.post("", response={201: PaymentDetail})
def payment_create(request, payload: PaymentCreate):
    require(request.auth, "payments.create")
    customer = services.billable_customer_or_error(payload.customer_id)
    payment = _record(request, customer, payload)
    return Status(201, selectors.payment_detail(viewer=request.auth, uid=payment.uid))


@payments.get("/{uid}", response=PaymentDetail)
def payment_detail(request, uid: UUID):
    require(request.auth, "payments.read")
    return selectors.payment_detail(viewer=request.auth, uid=uid)


@payments.put("/{uid}", response=PaymentDetail)
def payment_update(request, uid: UUID, payload: PaymentUpdate):
    require(request.auth, "payments.update")
    payment = selectors.payment_list(viewer=request.auth).get(uid=uid)
    services.payment_update(
        payment=payment, data=payload.dict(exclude_unset=True), actor=request.auth
    )
    return selectors.payment_detail(viewer=request.auth, uid=uid)


@payments.delete("/{uid}", response={204: None})
def payment_delete(request, uid: UUID):
    require(request.auth, "payments.void")
    services.payment_void(
        payment=selectors.payment_list(viewer=request.auth).get(uid=uid), actor=request.auth
    )
    return Status(204, None)


@customers.get("/{uid}/payments", response=list[PaymentList])
@paginate
def customer_payments(request, uid: UUID, filters: Query[PaymentFilters]):
    require(request.auth, "payments.read")
    customer = selectors.customer_list(viewer=request.auth).get(uid=uid)
    found = selectors.payment_page(viewer=request.auth).filter(customer=customer)
    return _filter_payments(found, filters)


@customers.post("/{uid}/payments", response={201: PaymentDetail})
def customer_payment_create(request, uid: UUID, payload: PaymentIn):
    require(request.auth, "payments.create")
    customer = selectors.customer_list(viewer=request.auth).get(uid=uid)
    customer = services.billable_customer_or_error(customer.pk)
    payment = _record(request, customer, payload)
    return Status(201, selectors.payment_detail(viewer=request.auth, uid=payment.uid))


# Dashboard -------------------------------------------------------------------


@dashboard.get("", response=Dashboard)
def dashboard_view(request):
    require(request.auth, "dashboard.read")
    return selectors.dashboard_figures()


# Tasks -----------------------------------------------------------------------


@tasks.get("/{task_id}", response=TaskStatus)
def task_status(request, task_id: str):
    require(request.auth, "tasks.read")
    return selectors.task_status(task_id)


# Routers ---------------------------------------------------------------------

ROUTER_ORDERING = {
    "created_at": "created_at",
    "name": "name",
    "drift_count": "drift_count",
    "last_sync_at": "last_sync_at",
    "customer_count": "customer_count",
}


def _require_router_admin(user) -> None:
    # A customer is not told that routers exist (404, as for another customer's record).
    if user.kind == UserKind.CUSTOMER:
        raise RouterModel.DoesNotExist()
    require(user, "routers.manage")


@routers.get("", response=list[RouterDetail])
@paginate
def router_list(request, params: Query[ListParams]):
    _require_router_admin(request.auth)
    found = search_filter(selectors.router_list(), params.search, ("name", "host"))
    return ordering_apply(found, params.ordering, ROUTER_ORDERING)


@routers.post("", response={201: RouterDetail})
def router_create(request, payload: RouterWrite):
    _require_router_admin(request.auth)
    router = router_services.router_save(data=payload.dict(), actor=request.auth)
    return Status(201, selectors.router_list().get(pk=router.pk))


@routers.get("/{uid}", response=RouterDetail)
def router_detail(request, uid: UUID):
    _require_router_admin(request.auth)
    return selectors.router_list().get(uid=uid)


@routers.put("/{uid}", response=RouterDetail)
def router_update(request, uid: UUID, payload: RouterWrite):
    _require_router_admin(request.auth)
    router = router_services.router_save(
        router=selectors.router_list().get(uid=uid), data=payload.dict(exclude_unset=True),
        actor=request.auth,
    )
    return selectors.router_list().get(pk=router.pk)


@routers.delete("/{uid}", response={204: None})
def router_delete(request, uid: UUID):
    _require_router_admin(request.auth)
    router_services.router_remove(router=selectors.router_list().get(uid=uid), actor=request.auth)
    return Status(204, None)


@routers.get("/{uid}/drift", response=RouterDrift)
def router_drift(request, uid: UUID):
    _require_router_admin(request.auth)
    return selectors.router_list().get(uid=uid)


@routers.post("/{uid}/sync", response={202: RunAccepted})
def router_sync(request, uid: UUID):
    _require_router_admin(request.auth)
    router = selectors.router_list().get(uid=uid)
    router_services.router_runnable(router)
    run = router_runs.router_run_request(
        router=router, kind=RouterRun.Kind.SYNC, requested_by=request.auth
    )
    return Status(202, {"task_id": run.task_id})


@routers.post("/{uid}/import", response={202: RunAccepted})
def router_import(
    request, uid: UUID,
    payload: RouterImportIn | None = Body(None),  # noqa: B008 (ninja's way to declare it)
):
    _require_router_admin(request.auth)
    router = selectors.router_list().get(uid=uid)
    router_services.router_runnable(router)
    run = router_runs.router_run_request(
        router=router, kind=RouterRun.Kind.IMPORT, requested_by=request.auth,
        dry_run=payload.dry_run if payload else True,
    )
    return Status(202, {"task_id": run.task_id})


# Online payments -------------------------------------------------------------

me = Router(tags=["online payments"])
online_payments = Router(tags=["online payments"])


class OnlinePaymentFilters(ListParams):
    state: OnlineState | None = None
    provider: OnlineProvider | None = None
    customer_id: DbInt | None = None


ONLINE_FILTERS = {"state": "state", "provider": "provider", "customer_id": "customer_id"}
ONLINE_SEARCH = ("customer__name", "customer__phone", "transaction_id", "invoice_number")
ONLINE_ORDERING = {"created_at": "created_at", "amount": "amount", "updated_at": "updated_at"}


def _own_customer(user):
    require(user, "bills.pay_own")
    customer = selectors.customer_list(viewer=user).select_related("package").first()
    if customer is None:
        raise CustomerModel.DoesNotExist()
    return customer


@me.get("/bills", response=list[PaymentList])
@paginate
def my_bills(request, params: Query[ListParams]):
    customer = _own_customer(request.auth)
    return selectors.own_bill_page(viewer=request.auth, customer=customer)


@me.post("/bills/pay", response={201: OnlinePaymentStarted})
def my_bills_pay(request, payload: PayIn):
    customer = _own_customer(request.auth)
    try:
        online = pay_service.online_payment_start(
            customer=customer, provider=payload.provider, payment_uids=payload.payment_uids)
    except pay_service.ProviderDown as error:
        raise ServiceUnavailable(f"{payload.provider} is not answering: {error}") from None
    return Status(201, selectors.online_payment_list(viewer=request.auth).get(pk=online.pk))


def _require_online_reader(user, permission: str = "online_payments.read") -> None:
    # A customer is not told about other customers' payments (404, as for a record).
    if user.kind == UserKind.CUSTOMER:
        raise OnlinePaymentModel.DoesNotExist()
    require(user, permission)


@online_payments.get("", response=list[OnlinePaymentOut])
@paginate
def online_payment_list(request, filters: Query[OnlinePaymentFilters]):
    _require_online_reader(request.auth)
    found = filters_apply(selectors.online_payment_list(viewer=request.auth), filters,
                          ONLINE_FILTERS)
    found = search_filter(found, filters.search, ONLINE_SEARCH)
    return ordering_apply(found, filters.ordering, ONLINE_ORDERING)


@online_payments.get("/{uid}", response=OnlinePaymentOut)
def online_payment_detail(request, uid: UUID):
    _require_online_reader(request.auth)
    return selectors.online_payment_list(viewer=request.auth).get(uid=uid)


@online_payments.post("/{uid}/refund", response=OnlinePaymentOut)
def online_payment_refund(
    request, uid: UUID, payload: RefundIn | None = Body(None),  # noqa: B008
):
    _require_online_reader(request.auth, "online_payments.refund")
    found = selectors.online_payment_list(viewer=request.auth).get(uid=uid)
    try:
        pay_service.online_payment_refund(online_payment=found,
                                     amount=payload.amount if payload else None,
                                     actor=request.auth)
    except pay_service.ProviderDown as error:
        raise ServiceUnavailable(f"{found.provider} is not answering: {error}") from None
    return selectors.online_payment_list(viewer=request.auth).get(pk=found.pk)
