"""Import from a router: an ISP's existing PPPoE secrets and static DHCP leases become
customers on that router.

The plan reads the router once (secrets, profiles, leases) and sorts every entry:
- **create**: nobody has its username (or, for a lease, its address or MAC); its
  profile names a package (``Package.profile_name``). A secret's comment gives the
  customer's phone (a Bangladeshi mobile number anywhere in it) and name (the rest of
  it, else the username); a disabled secret makes an inactive customer.
- **update**: the customer is there, on no router yet (or with blanks the router can
  fill: password, address): it is put on this router. What staff typed is never
  overwritten.
- **unchanged**: the customer is there and agrees.
- **conflict** (written nowhere): the customer is on another router, or has other
  data (password, package), the phone belongs to someone else, the profile matches
  no package, or a value does not fit.

A dry run only reports the plan. A confirmed import writes it in batches, each in its
own transaction, and marks the router's state as confirmed (what it read is what the
customer is), so no connection change is sent. Importing again finds every entry
unchanged.
"""

import re
import uuid
from dataclasses import dataclass, field
from ipaddress import ip_address

from django.db import transaction
from django.utils import timezone

from billing import router_runs
from billing.models import Customer, Package, Router, RouterRun
from billing.routeros import RouterClient, RouterError, router_client
from core.enums import ConnectionType, Status

BATCH_SIZE = 500
CONFLICTS_KEPT = 1000
PHONE = re.compile(r"(?<!\d)(?:\+?88)?(01[3-9]\d{8})(?!\d)")
FIELD_LIMITS = {"username": 64, "password": 128, "name": 200}


@dataclass
class Plan:
    create: list[Customer] = field(default_factory=list)
    update: list[tuple[Customer, list[str]]] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[dict] = field(default_factory=list)

    def conflict(self, username: str, reason: str) -> None:
        self.conflicts.append({"username": username, "reason": reason})

    def summary(self, *, dry_run: bool) -> dict:
        created, updated = ("would_create", "would_update") if dry_run else ("created", "updated")
        return {
            created: len(self.create), updated: len(self.update), "unchanged": self.unchanged,
            "conflict_count": len(self.conflicts), "conflicts": self.conflicts[:CONFLICTS_KEPT],
        }


def name_and_phone(comment: str, fallback: str) -> tuple[str, str]:
    """A customer's name and phone from a router comment such as "Karim 01712345678"."""
    match = PHONE.search(comment)
    phone = match.group(1) if match else ""
    name = PHONE.sub("", comment).strip(" ,;-/|") if comment else ""
    return (name or fallback)[: FIELD_LIMITS["name"]], phone


def valid_address(text: str) -> str:
    try:
        return str(ip_address(text.split("/")[0])) if text else ""
    except ValueError:
        return ""


def router_import_plan(client: RouterClient, router: Router) -> Plan:
    plan = Plan()
    packages = {package.profile_name: package for package in Package.objects.all()}
    live = Customer.objects.exclude(status=Status.REMOVED)
    secrets = [row for row in client.secrets() if row.get("name")]
    leases = [row for row in client.dhcp_leases()
              if row.get("dynamic", "false") != "true" and valid_address(row.get("address", ""))]
    by_username = _existing(live, "username", [row["name"] for row in secrets])
    addresses = [valid_address(row["address"]) for row in leases]
    by_address = _existing(live, "ip_address", addresses)
    by_mac = _existing(live, "mac_address", [row.get("mac-address", "") for row in leases])
    phones_taken = set()
    candidates = []
    for row in secrets:
        customer = _from_secret(plan, row, router, packages)
        if customer is not None:
            candidates.append((customer, by_username.get(customer.username)))
    default_package = packages.get("default")
    for row in leases:
        address = valid_address(row["address"])
        mac = row.get("mac-address", "")
        name, phone = name_and_phone(row.get("comment", ""),
                                     row.get("host-name", "") or address)
        customer = Customer(
            name=name, phone=phone, connection_type=ConnectionType.DHCP, ip_address=address,
            mac_address=mac[:17], router=router, package=default_package,
            is_active=row.get("disabled", "false") != "true",
        )
        candidates.append((customer, by_address.get(address) or by_mac.get(mac)))
    phones = _existing(live, "phone", [c.phone for c, _ in candidates if c.phone])
    for customer, existing in candidates:
        label = customer.username or customer.ip_address
        if existing is not None:
            _compare(plan, customer, existing, router, label)
            continue
        if customer.package is None:
            plan.conflict(label, "no package's profile is \"default\" for a DHCP lease")
            continue
        if customer.phone and (customer.phone in phones or customer.phone in phones_taken):
            plan.conflict(label, f"phone {customer.phone} belongs to another customer")
            continue
        if customer.phone:
            phones_taken.add(customer.phone)
        plan.create.append(customer)
    return plan


def _existing(customers, column: str, values: list[str]) -> dict[str, Customer]:
    found = {}
    values = [value for value in set(values) if value]
    for start in range(0, len(values), 1000):
        batch = customers.filter(**{f"{column}__in": values[start:start + 1000]})
        found.update({getattr(customer, column): customer for customer in batch})
    return found


def _from_secret(plan: Plan, row: dict, router: Router, packages: dict) -> Customer | None:
    username, password = row["name"], row.get("password", "")
    profile = row.get("profile", "default")
    for key, value in (("username", username), ("password", password)):
        if len(value) > FIELD_LIMITS[key]:
            plan.conflict(username[:64], f"the {key} is longer than {FIELD_LIMITS[key]}")
            return None
    package = packages.get(profile)
    if package is None:
        plan.conflict(username, f"profile {profile!r} matches no package")
        return None
    name, phone = name_and_phone(row.get("comment", ""), username)
    return Customer(
        name=name, phone=phone, connection_type=ConnectionType.PPPOE, username=username,
        password=password, package=package, router=router,
        ip_address=valid_address(row.get("remote-address", "")),
        is_active=row.get("disabled", "false") != "true",
    )


def _compare(plan: Plan, read: Customer, existing: Customer, router: Router, label: str) -> None:
    if existing.router_id not in (None, router.pk):
        plan.conflict(label, "the customer is on another router")
        return
    differs = [
        name for name in ("password", "ip_address", "mac_address")
        if getattr(existing, name) and getattr(read, name)
        and getattr(existing, name) != getattr(read, name)
    ]
    if read.connection_type == ConnectionType.PPPOE and existing.package_id != read.package_id:
        differs.append("package")
    if existing.connection_type != read.connection_type:
        differs.append("connection_type")
    if differs:
        plan.conflict(label, f"already there with other data: {', '.join(differs)}")
        return
    fill = [name for name in ("password", "ip_address", "mac_address")
            if getattr(read, name) and not getattr(existing, name)]
    if existing.router_id is None:
        fill.append("router")
    if not fill:
        plan.unchanged += 1
        return
    for name in fill:
        setattr(existing, name, getattr(read, name))
    plan.update.append((existing, fill))


def router_import_write(plan: Plan) -> None:
    now = timezone.now()
    for customer in plan.create:
        customer.network_confirmed_at = now
        customer.network_confirmed_active = customer.is_active
    for start in range(0, len(plan.create), BATCH_SIZE):
        with transaction.atomic():
            Customer.objects.bulk_create(plan.create[start:start + BATCH_SIZE])
    for start in range(0, len(plan.update), BATCH_SIZE):
        batch = plan.update[start:start + BATCH_SIZE]
        fields = sorted({name for _, names in batch for name in names} | {"updated_at"})
        for customer, _ in batch:
            customer.updated_at = now
        with transaction.atomic():
            Customer.objects.bulk_update([customer for customer, _ in batch], fields)


def router_import_step(*, run_id: int) -> None:
    """Carry an import run out: plan, and write unless it is a dry run."""
    run = router_runs.router_run_start(run_id)
    if run is None:
        return
    client = router_client(run.router)
    try:
        plan = router_import_plan(client, run.router)
    except RouterError as error:
        router_runs.router_run_fail(run_id=run.pk, error=str(error)[:2000])
        return
    finally:
        client.close()
    if not run.dry_run:
        router_import_write(plan)
    router_runs.router_run_finish(run, plan.summary(dry_run=run.dry_run))


def router_import_now(*, router: Router, dry_run: bool) -> RouterRun:
    """An import run carried out here and now (the management command's)."""
    run = RouterRun.objects.create(
        router=router, kind=RouterRun.Kind.IMPORT, dry_run=dry_run, trigger="COMMAND",
        task_id=str(uuid.uuid4()),
    )
    router_import_step(run_id=run.pk)
    run.refresh_from_db()
    return run
