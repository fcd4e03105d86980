"""``manage.py seed_demo --customers N --months M``: a large, valid demo data set, fast.

What it writes, in batches of ``--batch`` customers:

- ``--packages`` packages named "Demo <speed> Mbps", priced from 500.00 to 2500.00
  (reused when they already exist, e.g. with ``--append``);
- N customers with unique phones, e-mails and PPPoE usernames shaped as an ISP's are
  (mobile numbers of every operator's prefix, in no order: a sequence would make every
  number share its digits and mislead a search benchmark; ``first.last.N@example.com``;
  ``firstN``), a mix of connection types that passes the API's rules (PPPoE: username
  and password; STATIC: an IP address; DHCP: neither);
- the payment records of the last M business months (up to ``--until``, default the
  current one) as production makes them: one real bill run a month (``billing.bills``),
  oldest first, whose chunks this process carries out as the bills worker would, so
  every record a chunk inserts shares its ``created_at`` (5,000 a chunk) and only the
  billable customers (ACTIVE, switched on, not free) are billed. What the runs hand to
  the queue afterwards (the notices' dispatch, the reconciliation) goes to the
  configured broker. A share ``--paid-ratio`` of the records is then paid in full
  through one COLLECTION ledger line, so ``Payment.amount`` is the sum of its
  collections, with a transaction ID unique per method (none for CASH, as at the
  counter), at a moment between the record's creation and now; the others are
  unpaid, amount 0;
- the ADMIN user 01900000000 for benchmarks; its password is printed.

Refuses to run when customers already exist, unless ``--append`` (new customers then
continue the numbering after the demo customers already there). Everything is written in one
transaction: an interrupted run leaves nothing behind.

Speed: Django's ``bulk_create`` costs ~0.2 ms of Python per row here (building model
instances, preparing every value, compiling a statement of 100,000 parameters), which
made 100,000 customers x 3 months (~610,000 rows) take about five minutes. The rows
are therefore built as plain tuples over each model's concrete fields (defaults taken
from the model, so a new field with a default needs no change here) and written per
batch with ``COPY ... FROM STDIN`` on PostgreSQL, or one ``executemany`` INSERT on
other databases (SQLite), after reserving their ids. Customers' timestamps are set
explicitly (created when their connection started, so the ``created_at`` order is not
the id order). No signal is sent and ``save()`` is not called, as with ``bulk_create``.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import random
import re
import secrets
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone
from tqdm import tqdm

from accounts.models import User
from billing import bills
from billing.models import Collection, Customer, Package, Payment
from core.enums import BillingMonth, ConnectionType, PaymentMethod, Status, UserKind
from core.timeutils import business_month, start_of_business_day

ADMIN_PHONE = "01900000000"
# Bangladesh's mobile operators' prefixes, then 8 digits: 11 digits.
PHONE_PREFIXES = ("013", "014", "015", "016", "017", "018", "019")
PHONE_DIGITS = 8
# Customer number N gets the 8 digits (N x STEP + OFFSET) mod 10^8: one number each
# (STEP shares no factor with 10), scattered as real numbers are.
PHONE_STEP = 73_856_093
PHONE_OFFSET = 19_349_663
DEMO_EMAIL_DOMAIN = "@example.com"
DEMO_EMAIL = re.compile(r"[a-z]+\.[a-z]+\.([0-9]+)" + re.escape(DEMO_EMAIL_DOMAIN))
MIN_PRICE = Decimal("500.00")
MAX_PRICE = Decimal("2500.00")

FIRST_NAMES = (
    "Abdul", "Afsana", "Anisur", "Ayesha", "Farhana", "Habib", "Jamal", "Karim", "Laila",
    "Mahmud", "Meherun", "Nasrin", "Nusrat", "Rafiq", "Rahim", "Rashed", "Rumana", "Sabina",
    "Shahid", "Sharmin", "Sohel", "Tahmina", "Tanvir", "Zahid",
)
LAST_NAMES = (
    "Ahmed", "Akter", "Alam", "Begum", "Chowdhury", "Das", "Hasan", "Hossain", "Islam",
    "Kabir", "Khan", "Mia", "Rahman", "Roy", "Sarkar", "Siddique", "Talukder", "Uddin",
)
AREAS = (
    "Dhanmondi", "Gulshan", "Mirpur", "Mohammadpur", "Uttara", "Banani", "Badda", "Motijheel",
    "Rampura", "Khilgaon", "Bashundhara", "Lalbagh",
)
# (value, weight): most ISP customers dial PPPoE; bKash and cash dominate collections.
CONNECTION_MIX = (
    (ConnectionType.PPPOE.value, 60),
    (ConnectionType.DHCP.value, 25),
    (ConnectionType.STATIC.value, 15),
)
METHOD_MIX = (
    (PaymentMethod.BKASH.value, 35),
    (PaymentMethod.CASH.value, 25),
    (PaymentMethod.NAGAD.value, 15),
    (PaymentMethod.ROCKET.value, 8),
    (PaymentMethod.BANK_TRANSFER.value, 7),
    (PaymentMethod.ONLINE_PAYMENT.value, 5),
    (PaymentMethod.MOBILE_BANKING.value, 5),
)
ACTIVE_RATIO = 0.93
MAC_SHIFTS = (32, 24, 16, 8, 0)


def last_business_months(
    count: int, until: tuple[int, int] | None = None
) -> list[tuple[int, BillingMonth]]:
    """The last ``count`` business months up to ``until`` (year, month number; default the
    current one), oldest first."""
    if until is None:
        year, month = business_month()
        until = (year, month.number)
    year, number = until
    months = []
    for _ in range(count):
        months.append((year, BillingMonth.from_number(number)))
        number -= 1
        if number == 0:
            year, number = year - 1, 12
    return months[::-1]


def package_specs(count: int) -> list[tuple[str, int, Decimal]]:
    """(name, speed, price) of ``count`` packages, prices spread over 500.00–2500.00
    in steps of 50."""
    specs = []
    for i in range(count):
        share = Decimal(i) / Decimal(count - 1) if count > 1 else Decimal(0)
        price = MIN_PRICE + ((MAX_PRICE - MIN_PRICE) * share / 50).quantize(Decimal(1)) * 50
        speed = 10 * (i + 1)
        specs.append((f"Demo {speed} Mbps", speed, price.quantize(Decimal("0.01"))))
    return specs


def _plain(value):
    return value.value if isinstance(value, enum.Enum) else value


class _Table:
    """Writes rows of one model, given as {attname: value}, straight to its table."""

    use_copy = True  # COPY on PostgreSQL (the tests also run the INSERT path there)

    def __init__(self, model: type[models.Model]):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.table = model._meta.db_table
        self.postgres = connection.vendor == "postgresql"
        self.constant, self.computed = {}, []
        for field in self.fields:
            if field.has_default() and callable(field.default):
                self.computed.append(field)
            else:
                self.constant[field.attname] = _plain(field.get_default())
        self._next_id: int | None = None

    def reserve_ids(self, count: int) -> list[int]:
        """``count`` new primary keys: from the table's sequence on PostgreSQL, above
        the highest id elsewhere (the seeding transaction holds SQLite's write lock)."""
        if count == 0:
            return []
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                    "FROM generate_series(1, %s)",
                    [connection.ops.quote_name(self.table), count],
                )
                return [row[0] for row in cursor.fetchall()]
            if self._next_id is None:
                self._next_id = (self.model.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
            first, self._next_id = self._next_id, self._next_id + count
            return list(range(first, first + count))

    def write(self, rows: list[dict]) -> None:
        if not rows:
            return
        quote = connection.ops.quote_name
        # Rows without ids get them from the database (no one needs to know them).
        fields = [f for f in self.fields if not (f.primary_key and f.attname not in rows[0])]
        computed = [f for f in self.computed if f in fields]
        columns = ", ".join(quote(f.column) for f in fields)
        values = []
        for row in rows:
            for field in computed:
                if field.attname not in row:
                    row[field.attname] = _plain(field.get_default())
            values.append(tuple(row.get(f.attname, self.constant.get(f.attname)) for f in fields))
        with connection.cursor() as cursor:
            if self.postgres and self.use_copy:
                json_at = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
                raw = cursor.cursor  # the psycopg cursor, in Django's transaction
                with raw.copy(f"COPY {quote(self.table)} ({columns}) FROM STDIN") as copy:
                    for value in values:
                        if json_at:
                            value = list(value)
                            for i in json_at:
                                value[i] = fields[i].get_db_prep_save(value[i], connection)
                        copy.write_row(value)
            else:
                prepared = [
                    [f.get_db_prep_save(v, connection) for f, v in zip(fields, value, strict=True)]
                    for value in values
                ]
                marks = ", ".join(["%s"] * len(fields))
                cursor.executemany(
                    f"INSERT INTO {quote(self.table)} ({columns}) VALUES ({marks})", prepared
                )


class _Mix:
    """Draws a value with its weight, from (value, weight) pairs."""

    def __init__(self, mix):
        self.values = [value for value, _ in mix]
        self.cum = list(itertools.accumulate(weight for _, weight in mix))

    def draw(self, rng: random.Random) -> str:
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]


CONNECTIONS, METHODS = _Mix(CONNECTION_MIX), _Mix(METHOD_MIX)


class Command(BaseCommand):
    help = "Seed packages, customers, monthly payment records and their ledger, fast."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, required=True, help="customers to create")
        parser.add_argument(
            "--months", type=int, required=True,
            help="payment records per customer: the last M business months",
        )
        parser.add_argument(
            "--until", default=None, metavar="YYYY-MM",
            help="the last month billed (default: the current business month)",
        )
        parser.add_argument("--packages", type=int, default=8, help="packages (default 8)")
        parser.add_argument(
            "--paid-ratio", type=float, default=0.7, help="share of records paid (default 0.7)"
        )
        parser.add_argument(
            "--free-ratio", type=float, default=0.0,
            help="share of free customers, who get no payment records (default 0)",
        )
        parser.add_argument(
            "--batch", type=int, default=5000, help="customers per batch (default 5000)"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--append", action="store_true", help="add to existing customers instead of refusing"
        )
        parser.add_argument(
            "--admin-password",
            default=None,
            help="password of the ADMIN user 01900000000 (default: random when the user is "
            "created, unchanged when it exists)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        customers = options["customers"]
        months = options["months"]
        if customers < 0:
            raise CommandError("--customers must be 0 or more.")
        if not 0 <= months <= 120:
            raise CommandError("--months must be between 0 and 120.")
        if not 1 <= options["packages"] <= 100:
            raise CommandError("--packages must be between 1 and 100.")
        for name in ("paid_ratio", "free_ratio"):
            if not 0.0 <= options[name] <= 1.0:
                raise CommandError(f"--{name.replace('_', '-')} must be between 0 and 1.")
        if not 1 <= options["batch"] <= 100_000:
            raise CommandError("--batch must be between 1 and 100000.")
        until = None
        if options["until"]:
            try:
                until = tuple(int(part) for part in options["until"].split("-"))
                date(*until, 1)
            except (TypeError, ValueError) as error:
                raise CommandError("--until must be YYYY-MM.") from error

        started = time.monotonic()
        with transaction.atomic():
            existing = Customer.objects.count()
            if existing and not options["append"]:
                raise CommandError(
                    f"There are already {existing} customers; pass --append to add more."
                )
            admin, password_note = self._admin(options["admin_password"])
            packages, created_packages = self._packages(options["packages"])
            totals = self._seed(
                customers=customers,
                months=last_business_months(months, until),
                packages=packages,
                admin=admin,
                options=options,
            )
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:  # fresh planner statistics
                    for model in (Package, Customer, Payment, Collection):
                        cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        elapsed = time.monotonic() - started

        self.stdout.write(
            f"Packages: {created_packages} created, {len(packages) - created_packages} reused.\n"
            f"Customers: {totals['customers']} created"
            f" (phones {totals['first_phone']}..{totals['last_phone']}).\n"
            f"Payment records: {totals['payments']} ({totals['paid']} paid, "
            f"{totals['payments'] - totals['paid']} unpaid) for {months} month(s).\n"
            f"Collections: {totals['paid']}.\n"
            f"Seeded in {elapsed:.1f} s.\n"
            f"Benchmark administrator (ADMIN): phone {ADMIN_PHONE} / password {password_note}"
        )

    # Parts -------------------------------------------------------------------

    def _admin(self, password: str | None) -> tuple[User, str]:
        user = User.objects.filter(phone=ADMIN_PHONE).first()
        if user is None:
            password = password or secrets.token_urlsafe(12)
            user = User.objects.create_user(
                phone=ADMIN_PHONE, password=password, kind=UserKind.ADMIN,
                first_name="Bench", last_name="Admin",
            )
            return user, password
        changed = []
        if user.kind != UserKind.ADMIN or user.status != Status.ACTIVE:
            user.kind, user.status = UserKind.ADMIN, Status.ACTIVE
            changed += ["kind", "status"]
        if password:
            user.set_password(password)
            changed.append("password")
        if changed:
            user.save(update_fields=[*changed, "updated_at"])
        return user, password or "(user already there, password unchanged)"

    def _packages(self, count: int) -> tuple[list[Package], int]:
        live = {p.name.lower(): p for p in Package.objects.exclude(status=Status.REMOVED)}
        packages, new = [], []
        for name, speed, price in package_specs(count):
            package = live.get(name.lower())
            if package is None:
                package = Package(
                    name=name, speed_mbps=speed, price=price,
                    description=f"Demo package: {speed} Mbps, unlimited data.",
                )
                new.append(package)
            packages.append(package)
        for package in new:  # a handful: save() keeps every model rule
            package.save()
        return packages, len(new)

    def _first_index(self) -> int:
        """One above the demo customers already there (removed ones too): each is numbered
        in its e-mail, ``first.last.N@example.com``."""
        emails = Customer.objects.filter(email__endswith=DEMO_EMAIL_DOMAIN)
        numbers = emails.values_list("email", flat=True)
        highest = max((int(m.group(1)) for e in numbers.iterator()
                       if (m := DEMO_EMAIL.fullmatch(e))), default=0)
        return highest + 1

    def _seed(self, *, customers, months, packages, admin, options) -> dict:
        rng = random.Random(options["seed"])
        # uids and PPPoE passwords: fresh on every run whatever --seed (as uuid4 and
        # secrets would be), drawn from a generator seeded by the OS, ~50x cheaper.
        self._fresh = random.Random(secrets.randbits(256))
        self._zone = timezone.get_current_timezone()
        batch = options["batch"]
        paid_ratio, free_ratio = options["paid_ratio"], options["free_ratio"]
        first = self._first_index()
        if first + customers - 1 >= 10**PHONE_DIGITS:
            raise CommandError("Out of demo phone numbers.")
        now = timezone.now()
        oldest = now
        if months:
            oldest = start_of_business_day(date(months[0][0], months[0][1].number, 1))
        tables = {model: _Table(model) for model in (Customer, Collection)}
        totals = {"customers": 0, "payments": 0, "paid": 0}
        progress = tqdm(
            total=customers,
            unit="customer",
            desc="seed_demo",
            file=sys.stderr,
            disable=options["no_progress"] or options["verbosity"] == 0,
        )
        try:
            for start in range(first, first + customers, batch):
                indexes = range(start, min(start + batch, first + customers))
                customer_rows = [
                    self._customer(rng, index, packages, oldest, now, free_ratio)
                    for index in indexes
                ]
                tables[Customer].write(customer_rows)
                totals["customers"] += len(customer_rows)
                progress.update(len(customer_rows))
        finally:
            progress.close()
        last_payment = Payment.objects.aggregate(m=Max("pk"))["m"] or 0
        for year, month in months:
            self._bill_run(year, month, admin)
        totals["payments"] = Payment.objects.filter(pk__gt=last_payment).count()
        totals["paid"] = self._pay_share(
            rng, last_payment, paid_ratio, admin, batch, tables[Collection]
        )
        totals["first_phone"] = self._phone(first) if customers else "-"
        totals["last_phone"] = self._phone(first + customers - 1) if customers else "-"
        return totals

    def _uid(self) -> uuid.UUID:
        return uuid.UUID(int=self._fresh.getrandbits(128), version=4)

    @staticmethod
    def _phone(index: int) -> str:
        digits = (index * PHONE_STEP + PHONE_OFFSET) % 10**PHONE_DIGITS
        return f"{PHONE_PREFIXES[index % len(PHONE_PREFIXES)]}{digits:0{PHONE_DIGITS}d}"

    def _customer(self, rng, index, packages, oldest: datetime, now, free_ratio) -> dict:
        kind = CONNECTIONS.draw(rng)
        package = rng.choice(packages)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        # Connected some time in the ~3 years before the oldest billed month.
        created = oldest - timedelta(minutes=rng.randint(60, 3 * 365 * 24 * 60))
        row = {
            "uid": self._uid(),
            "created_at": created,
            "updated_at": created,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}.{index}{DEMO_EMAIL_DOMAIN}",
            "phone": self._phone(index),
            "address": f"House {rng.randint(1, 200)}, Road {rng.randint(1, 40)}, "
            f"{rng.choice(AREAS)}, Dhaka",
            "nid": str(rng.randrange(10**12, 10**13)),
            "is_free": rng.random() < free_ratio,
            "package_id": package.pk,
            "connection_start_date": created.astimezone(self._zone).date(),
            "is_active": rng.random() < ACTIVE_RATIO,
            "mac_address": "02:" + ":".join(f"{(index >> s) & 0xFF:02X}" for s in MAC_SHIFTS),
            "connection_type": kind,
            "credentials": {},
            "_price": package.price,
        }
        if kind == ConnectionType.PPPOE:
            row["username"] = f"{first.lower()}{index}"
            row["password"] = f"{self._fresh.getrandbits(48):012x}"
        elif kind == ConnectionType.STATIC:
            row["ip_address"] = f"10.{(index >> 16) & 0xFF}.{(index >> 8) & 0xFF}.{index & 0xFF}"
        return row

    @staticmethod
    def _bill_run(year: int, month: BillingMonth, admin: User) -> None:
        """A month's bill run, its tasks done here in order, as the bills worker does them."""
        run = bills.bill_run_start(requested_by=admin, year=year, month=month)
        bills.bill_run_plan(run_id=run.pk)
        for chunk_id in run.chunks.order_by("number").values_list("pk", flat=True):
            bills.bill_chunk_process(chunk_id=chunk_id)
        bills.bill_run_finish(run_id=run.pk)

    def _pay_share(self, rng, after_id: int, paid_ratio: float, admin, batch, table) -> int:
        """Pay ``paid_ratio`` of the records above ``after_id`` in full; how many."""
        paid, last = 0, after_id
        while True:
            records = list(
                Payment.objects.filter(pk__gt=last).order_by("pk")
                .values("id", "uid", "bill_amount", "created_at")[:batch]
            )
            if not records:
                return paid
            last = records[-1]["id"]
            now = timezone.now()
            chosen = [record for record in records if rng.random() < paid_ratio]
            lines = [self._pay(rng, record, now, admin) for record in chosen]
            for line in lines:
                line["payment_id"] = line.pop("payment")["id"]
            table.write(lines)
            self._mark_paid(chosen, admin)
            paid += len(chosen)

    @staticmethod
    def _mark_paid(records: list[dict], admin) -> None:
        if not records:
            return
        columns = ("amount", "payment_method", "transaction_id", "payment_date")
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "UPDATE billing_payment p SET paid = true, amount = v.amount, "
                    "payment_method = v.payment_method, transaction_id = v.transaction_id, "
                    "payment_date = v.payment_date, updated_at = v.payment_date, "
                    "entry_by_id = %s FROM unnest(%s::bigint[], %s::numeric[], %s::text[], "
                    "%s::text[], %s::timestamptz[]) "
                    "AS v(id, amount, payment_method, transaction_id, payment_date) "
                    "WHERE p.id = v.id",
                    [admin.pk, [r["id"] for r in records],
                     *([r[column] for r in records] for column in columns)],
                )
            else:
                cursor.executemany(
                    "UPDATE billing_payment SET paid = %s, amount = %s, payment_method = %s, "
                    "transaction_id = %s, payment_date = %s, updated_at = %s, entry_by_id = %s "
                    "WHERE id = %s",
                    [
                        [True, str(r["amount"]), r["payment_method"], r["transaction_id"],
                         r["payment_date"], r["payment_date"], admin.pk, r["id"]]
                        for r in records
                    ],
                )

    def _pay(self, rng, payment: dict, now, admin) -> dict:
        """Pay ``payment`` in full; the ledger line that says so."""
        method = METHODS.draw(rng)
        # Paid after it was billed, by now: distinct moments, as payments come one by one.
        moment = payment["created_at"] + (now - payment["created_at"]) * rng.random()
        # The record's own uid makes the ID unique for every method, across --append runs.
        trxid = "" if method == PaymentMethod.CASH else payment["uid"].hex.upper()
        payment.update(
            amount=payment["bill_amount"],
            paid=True,
            payment_method=method,
            transaction_id=trxid,
            payment_date=moment,
        )
        return {
            "uid": self._uid(),
            "payment": payment,
            "kind": Collection.Kind.COLLECTION.value,
            "amount": payment["bill_amount"],
            "payment_method": method,
            "transaction_id": trxid,
            "payment_date": moment,
            "note": "Demo collection.",
            "recorded_by_id": admin.pk,
            "created_at": moment,
        }
