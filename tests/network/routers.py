"""Router records pointing at fake RouterOS servers, and customers on them."""

from decimal import Decimal

from billing.models import Customer, Package, Router
from core.enums import ConnectionType, RouterKind, Status

ROUTER_PASSWORD = "router-pass"


def router_record(fake, *, name: str = "core-1", kind: str = RouterKind.ROUTEROS_REST,
                  port: int | None = None, **fields) -> Router:
    """A router in billing for the fake ``fake`` (plain HTTP or plain API on 127.0.0.1)."""
    return Router.objects.create(
        name=name, kind=kind, host="127.0.0.1", port=port or fake.port, use_tls=False,
        username=fake.user, password=fake.password, timeout_seconds=fields.pop("timeout", 2.0),
        calls_per_second=fields.pop("calls_per_second", 1000), **fields,
    )


def package(name: str = "Home 20", profile: str = "20M") -> Package:
    found = Package.objects.filter(name=name).first()
    return found or Package.objects.create(
        name=name, speed_mbps=20, price=Decimal("500.00"), router_profile=profile
    )


def pppoe_customer(router: Router, username: str, *, active: bool = True, **fields) -> Customer:
    return Customer.objects.create(
        name=fields.pop("name", username.title()), package=fields.pop("package", None) or package(),
        connection_type=ConnectionType.PPPOE, username=username,
        password=fields.pop("password", "pppoe-pass"), is_active=active, router=router, **fields,
    )


def address_customer(router: Router, address: str, *, active: bool = True,
                     kind: str = ConnectionType.STATIC, **fields) -> Customer:
    return Customer.objects.create(
        name=fields.pop("name", f"Static {address}"), package=package(), connection_type=kind,
        ip_address=address, is_active=active, router=router, status=Status.ACTIVE, **fields,
    )
