"""Import from a router: a dry run writes nothing, the import creates and updates what the
dry run said, conflicts are reported and skipped, and a second import changes nothing."""

import pytest
from django.core.management import CommandError, call_command

from billing.models import ConnectionChange, Customer, RouterRun
from billing.router_import import name_and_phone, router_import_now
from billing.router_runs import router_run_request
from billing.routeros import router_client
from core.enums import ConnectionType
from tests.network.routers import package, pppoe_customer, router_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def router(fake):
    return router_record(fake)


def secret(router, name, *, profile="20M", disabled=False, password="pw", comment="",
           remote_address=""):
    client = router_client(router)
    fields = {"name": name, "password": password, "profile": profile, "service": "pppoe",
              "disabled": "true" if disabled else "false", "comment": comment}
    if remote_address:
        fields["remote-address"] = remote_address
    client.add_secret(fields)
    client.close()


@pytest.mark.parametrize(("comment", "expected"), [
    ("Karim Uddin 01712345678", ("Karim Uddin", "01712345678")),
    ("+8801912345678, Rupa", ("Rupa", "01912345678")),
    ("", ("fallback", "")),
    ("0171234 short", ("0171234 short", "")),
])
def test_a_comment_gives_a_name_and_a_phone(comment, expected):
    assert name_and_phone(comment, "fallback") == expected


def test_dry_run_then_import_then_again(router, fake):
    home = package()
    secret(router, "karim", comment="Karim Uddin 01712345678", remote_address="10.5.0.7")
    secret(router, "rupa", disabled=True, comment="Rupa 01812345678")
    secret(router, "nobody-package", profile="999M")
    fake.add_lease("10.6.0.9", "AA:BB:CC:DD:EE:01", comment="Shop 01912345678")
    package(name="Basic", profile="default")

    dry = router_import_now(router=router, dry_run=True)

    assert dry.state == RouterRun.State.SUCCESS, dry.error
    assert dry.result["would_create"] == 3
    assert dry.result["would_update"] == 0
    assert dry.result["conflicts"] == [
        {"username": "nobody-package", "reason": "profile '999M' matches no package"}
    ]
    assert Customer.objects.count() == 0

    done = router_import_now(router=router, dry_run=False)

    assert done.result["created"] == 3
    assert done.result["unchanged"] == 0
    karim = Customer.objects.get(username="karim")
    assert (karim.name, karim.phone, karim.package, karim.router, karim.ip_address) == (
        "Karim Uddin", "01712345678", home, router, "10.5.0.7")
    assert karim.password == "pw"
    assert karim.is_active and karim.network_confirmed_active is True
    rupa = Customer.objects.get(username="rupa")
    assert rupa.is_active is False
    shop = Customer.objects.get(ip_address="10.6.0.9")
    assert (shop.connection_type, shop.mac_address, shop.phone) == (
        ConnectionType.DHCP, "AA:BB:CC:DD:EE:01", "01912345678")
    assert not ConnectionChange.objects.exists()

    again = router_import_now(router=router, dry_run=False)

    assert (again.result["created"], again.result["updated"], again.result["unchanged"]) == (
        0, 0, 3)
    assert Customer.objects.count() == 3


def test_conflicts_are_reported_and_nothing_of_theirs_is_written(router, fake):
    other_router = router_record(fake, name="other")
    pppoe_customer(other_router, "taken-elsewhere")
    pppoe_customer(None, "other-password", password="typed-by-staff")
    pppoe_customer(None, "phone-owner", phone="01711111111")
    secret(router, "taken-elsewhere")
    secret(router, "other-password", password="router-side")
    secret(router, "new-with-taken-phone", comment="Someone 01711111111")

    run = router_import_now(router=router, dry_run=False)

    reasons = {c["username"]: c["reason"] for c in run.result["conflicts"]}
    assert reasons == {
        "taken-elsewhere": "the customer is on another router",
        "other-password": "already there with other data: password",
        "new-with-taken-phone": "phone 01711111111 belongs to another customer",
    }
    assert run.result["created"] == 0
    assert Customer.objects.get(username="other-password").password == "typed-by-staff"
    assert Customer.objects.get(username="taken-elsewhere").router == other_router
    assert not Customer.objects.filter(username="new-with-taken-phone").exists()


def test_a_customer_on_no_router_is_put_on_this_one(router):
    existing = pppoe_customer(None, "karim", password="")
    secret(router, "karim", password="from-router")

    run = router_import_now(router=router, dry_run=False)

    assert run.result["updated"] == 1
    existing.refresh_from_db()
    assert (existing.router, existing.password) == (router, "from-router")


def test_the_import_through_the_queue(router, django_capture_on_commit_callbacks):
    secret(router, "karim")
    package()
    with django_capture_on_commit_callbacks(execute=True):
        run = router_run_request(router=router, kind=RouterRun.Kind.IMPORT, requested_by=None,
                                 dry_run=True)
    run.refresh_from_db()
    assert run.state == RouterRun.State.SUCCESS, run.error
    assert run.result["would_create"] == 1
    assert not Customer.objects.exists()


def test_a_router_that_is_down_fails_the_import(router, fake):
    fake.go_down()
    run = router_import_now(router=router, dry_run=True)
    assert run.state == RouterRun.State.FAILED
    assert run.error


def test_the_management_command(router, capsys):
    secret(router, "karim")
    package()
    call_command("import_router", "core-1")
    assert not Customer.objects.exists()
    assert '"would_create": 1' in capsys.readouterr().out
    call_command("import_router", str(router.uid), "--confirm")
    assert Customer.objects.filter(username="karim", router=router).exists()
    with pytest.raises(CommandError):
        call_command("import_router", "no-such-router")
