#!/usr/bin/env python
"""Enforcement lag: payments that settle suspended customers while a 1,000,000-customer
bill run is running, from each payment's commit to its router confirming the customer
enabled; beside it, the bill run's own rate without this load.

    .venv/bin/python bench/router_lag.py [--customers 1000000] [--routers 5]
        [--secrets 20000] [--delay 0.02] [--payments 500] [--spread 30] [--json FILE]

What it does, start to finish (every wait is bounded in time):

1. Database ``isp_bench_lag``: migrated and seeded with ``manage.py seed_demo
   --customers N --months 0 --seed 1`` (reused at the same size; what an earlier run of
   this script left is undone first). ``--routers`` fake RouterOS REST servers run in
   this process; the first ``--routers x --secrets`` PPPoE and STATIC customers are put
   on them, ``--secrets`` each, and each fake holds what billing says: a secret per
   PPPoE customer (its package's profile, disabled when the customer is switched off),
   a ``billing-blocked`` entry per STATIC customer switched off. Every call to a fake
   answers after ``--delay`` seconds; each router allows ``--calls-per-second``.
2. Workers as production runs them, each queue its own worker: ``celery worker -c 2``
   on bills (and default), ``celery worker -c 2`` on network. No beat, no notification
   worker (notices are written, not sent). Fresh workers for every bill run.
3. Run A: a bill run for a month of its own, no other load: the baseline rate.
4. ``--payments`` customers on the routers that run A billed are suspended, as the
   dunning sweep leaves them: switched off in billing, their secret disabled or their
   address in the blocked list.
5. Run B: a bill run for the next month; once it has planned its chunks, this process
   records a bKash payment of each suspended customer's run-A bill, evenly over
   ``--spread`` seconds from 8 threads (``billing.services.payment_record``: the record
   is paid, the customer switched on, the change published after commit to the network
   queue). With ``--online`` each customer pays online instead: a checkout at a fake
   bKash (``--bkash-delay`` per call) from 16 threads, approved, and bKash's redirect
   arriving three times at once; the lag runs from the customer's approval at bKash
   (the provider's success), and the checks add that every online payment is credited
   exactly once, to the paisa.
   The lag of each is from the commit (``payment_record`` returned) to the
   change's ``confirmed_at`` (the network worker read the router back and found it
   enabled); the router-side time (the fake answering the enabling call) is reported
   too. Calls per customer: the fakes' request log while B's payments are carried out.
6. Run C: a third bill run, no other load (so the baseline brackets run B).
7. Checks: every suspended customer is active again, enabled on its router (secret not
   disabled, no blocked entry), its record paid with exactly its bill amount, one line
   each; each bill run SUCCESS with a record per billable customer.
8. Prints p50/p90/p99/max lag, calls per customer and the three runs' rates; exit 0 when
   p99 < 60 s (the target), 1 when not, 2 when the run failed.

Uses Redis database 12 and deletes its queues' keys there at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from bill_run import (
    Months,
    Worker,
    billable_count,
    clear_bench_months,
    forget_queue,
    month_counts,
    prepare_database,
    setup_django,
    sql,
    stop_workers,
    wait_ready,
)
from bill_run import bench_env as bill_bench_env
from common import ROOT, VENV_BIN, BenchError

TARGET_P99_SECONDS = 60.0
PAYMENT_THREADS = 8
# Each online payer also holds up to three redirects' connections at once.
ONLINE_THREADS = 16
# Customers this script switched off, so a later run (or one that failed) can undo it.
SUSPENDED_TABLE = "bench_lag_suspended"
STAFF_PHONE = "01999000111"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--routers", type=int, default=5)
    parser.add_argument("--secrets", type=int, default=20_000, help="customers per router")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per router call")
    parser.add_argument("--calls-per-second", type=int, default=20,
                        help="each router's call limit (20, a new router's default)")
    parser.add_argument("--payments", type=int, default=500)
    parser.add_argument("--spread", type=float, default=30.0,
                        help="seconds over which the payments are recorded (30)")
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds a bill run, or the confirmations, may take (1200)")
    parser.add_argument("--db-name", default="isp_bench_lag")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--drop-db", action="store_true", help="drop and reseed the database")
    parser.add_argument("--online", action="store_true",
                        help="customers pay online through a fake bKash instead of staff "
                             "recording their payments")
    parser.add_argument("--bkash-delay", type=float, default=0.1,
                        help="seconds per call to the fake bKash (--online)")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    if args.payments > args.routers * args.secrets:
        parser.error("--payments must not exceed --routers x --secrets")
    args.months = 0
    args.queue = f"bench-lag-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return args


# The fakes -------------------------------------------------------------------------


def timed_fake_class():
    from tests.network.fake_routeros import FakeRouterOS

    class TimedFakeRouterOS(FakeRouterOS):
        """Its request log also keeps when each answer was given."""

        def __init__(self) -> None:
            super().__init__()
            self.answered_at: list[float] = []

        def log(self, request) -> None:
            with self._lock:
                self.requests.append(request)
                self.answered_at.append(time.time())

        def timed_calls(self) -> list[tuple[float, object]]:
            with self._lock:
                return list(zip(self.answered_at, self.requests, strict=True))

    return TimedFakeRouterOS


# Database state --------------------------------------------------------------------


def undo_earlier_runs() -> None:
    """What an earlier run of this script left: its routers, records and suspensions."""
    sql(f"CREATE TABLE IF NOT EXISTS {SUSPENDED_TABLE} (customer_id bigint PRIMARY KEY)")
    sql(f"UPDATE billing_customer SET is_active = true "
        f"WHERE id IN (SELECT customer_id FROM {SUSPENDED_TABLE})")
    sql(f"TRUNCATE {SUSPENDED_TABLE}")
    # TRUNCATE: the action log refuses row deletes (it is append-only).
    sql("TRUNCATE billing_routeraction, billing_routerrun, billing_connectionchange")
    sql("UPDATE billing_customer SET router_id = NULL WHERE router_id IS NOT NULL")
    sql("DELETE FROM billing_router")
    clear_bench_months()


def staff_user():
    from accounts.models import User
    from core.enums import UserKind

    user = User.objects.filter(phone=STAFF_PHONE).first()
    return user or User.objects.create_user(phone=STAFF_PHONE, password=uuid.uuid4().hex,
                                            kind=UserKind.ADMIN, first_name="Lag",
                                            last_name="Bench")


def put_on_routers(args, fake_class):
    """Routers and fakes; the first routers x secrets PPPoE/STATIC customers on them,
    each fake holding what billing says of its customers."""
    from billing.enforcement import blocked_list, owner_comment
    from billing.models import Customer, Router

    fakes, routers = [], []
    for number in range(args.routers):
        fake = fake_class().start()
        routers.append(Router.objects.create(
            name=f"lag-{number}", host="127.0.0.1", port=fake.port, use_tls=False,
            username=fake.user, password=fake.password,
            calls_per_second=args.calls_per_second, timeout_seconds=5))
        fakes.append(fake)
    sql("""
        WITH placed AS (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / %(per)s AS slot
            FROM billing_customer
            WHERE (connection_type = 'PPPoE' AND username <> '')
               OR (connection_type = 'STATIC' AND ip_address IS NOT NULL)
            ORDER BY id LIMIT %(total)s)
        UPDATE billing_customer c SET router_id = (%(ids)s::bigint[])[placed.slot + 1]
        FROM placed WHERE c.id = placed.id
    """, {"per": args.secrets, "total": args.routers * args.secrets,
          "ids": [r.pk for r in routers]})
    sql("ANALYZE billing_customer")
    by_router = {r.pk: fake for r, fake in zip(routers, fakes, strict=True)}
    rows = (Customer.objects.filter(router__isnull=False).select_related("package")
            .only("uid", "router_id", "connection_type", "username", "ip_address",
                  "is_active", "package__name", "package__router_profile").iterator(5000))
    placed = 0
    for customer in rows:
        fake = by_router[customer.router_id]
        if customer.connection_type == "PPPoE":
            fake.add_secret(customer.username, disabled=not customer.is_active,
                            profile=customer.package.profile_name)
        elif not customer.is_active:
            fake.add_address(blocked_list(), customer.ip_address, owner_comment(str(customer.uid)))
        placed += 1
    return fakes, routers, placed


def suspend(args, rng, billed_month: tuple[int, str], fakes, routers) -> dict[int, tuple]:
    """``--payments`` customers on the routers billed for ``billed_month``, switched off
    in billing and on their routers; customer id -> the call that will switch it on
    again: (fake, method, path)."""
    from billing.enforcement import blocked_list, owner_comment
    from billing.models import Customer

    year, month = billed_month
    candidates = [row[0] for row in sql(
        "SELECT c.id FROM billing_customer c JOIN billing_payment b ON b.customer_id = c.id "
        "WHERE c.router_id IS NOT NULL AND c.is_active AND b.billing_year = %s "
        "AND b.billing_month = %s AND NOT b.paid ORDER BY c.id", [year, month])]
    if len(candidates) < args.payments:
        raise BenchError(f"only {len(candidates)} billed customers on the routers")
    chosen = sorted(rng.sample(candidates, args.payments))
    sql(f"INSERT INTO {SUSPENDED_TABLE} SELECT unnest(%s::bigint[])", [chosen])
    Customer.objects.filter(pk__in=chosen).update(is_active=False)
    by_router = {r.pk: fake for r, fake in zip(routers, fakes, strict=True)}
    enabling = {}
    for customer in Customer.objects.filter(pk__in=chosen):
        fake = by_router[customer.router_id]
        if customer.connection_type == "PPPoE":
            with fake._lock:
                ident = next(i for i, row in fake.secrets.items()
                             if row["name"] == customer.username)
                fake.secrets[ident]["disabled"] = "true"
            enabling[customer.pk] = (fake, "PATCH", f"/rest/ppp/secret/{ident}")
        else:
            ident = fake.add_address(blocked_list(), customer.ip_address,
                                     owner_comment(str(customer.uid)))
            enabling[customer.pk] = (fake, "DELETE", f"/rest/ip/firewall/address-list/{ident}")
    return enabling


# Workers and bill runs -------------------------------------------------------------


def start_workers(args, workdir: Path, tag: str) -> list[Worker]:
    env = bill_bench_env(args, chunk_size=args.chunk_size)
    env["LOG_LEVEL"] = "INFO"
    layout = [("bills", ("bills", "default")), ("network", ("network",))]
    workers = []
    for role, queues in layout:
        name = f"bench-lag-{role}-{os.getpid()}@%h"
        log = workdir / f"worker-{tag}-{role}.log"
        argv = [str(VENV_BIN / "celery"), "-A", "tasks", "worker", "-c", "2",
                "-Q", ",".join(f"{args.queue}.{q}" for q in queues), "-n", name,
                "--without-gossip", "--without-mingle", "-E", "--loglevel=INFO"]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        workers.append(Worker(name, proc, log))
    return workers


def wait_for(what: str, check, workers: list[Worker], timeout: float, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for w in workers:
            if not w.alive():
                raise BenchError(f"worker {w.name} died while waiting for {what}\n{w.tail()}")
        time.sleep(every)
    raise BenchError(f"{what}: not in {timeout:.0f} s\n" + "\n".join(w.tail() for w in workers))


def bill_run(args, month: tuple[int, str], workers: list[Worker], during=None) -> dict:
    """A bill run for ``month`` on running workers; ``during(run)`` is called once the
    run has planned its chunks. The run's figures."""
    from billing.bills import bill_run_start
    from billing.models import BillRun

    year, name = month
    expected = billable_count()
    started_wall = time.time()
    run = bill_run_start(requested_by=None, year=year, month=name)

    def planned():
        return BillRun.objects.filter(pk=run.pk, started_at__isnull=False).exists()

    wait_for("the bill run's plan", planned, workers, args.timeout)
    extra = during(run) if during else None

    def ended():
        state = BillRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
        return state if state in (BillRun.State.SUCCESS, BillRun.State.FAILED) else None

    wait_for("the bill run's end", ended, workers, args.timeout)
    run.refresh_from_db()
    if run.state != BillRun.State.SUCCESS:
        raise BenchError(f"bill run {name} {year} ended {run.state}: {run.error}")
    records, _ = month_counts(year, name)
    # A customer switched on again during the run is billed when its chunk comes later.
    expected_after = billable_count()
    if records != run.created_count or not expected <= records <= expected_after:
        raise BenchError(f"bill run {name} {year}: {records} records, {run.created_count} "
                         f"created, {expected} billable at the start, {expected_after} at "
                         "the end")
    seconds = run.finished_at.timestamp() - started_wall
    return {"month": f"{name} {year}", "records": records, "seconds": seconds,
            "rate": records / seconds, "started_at": run.started_at.timestamp(),
            "finished_at": run.finished_at.timestamp(), "load": extra}


def with_workers(args, workdir: Path, tag: str, body):
    forget_queue(args)
    workers = start_workers(args, workdir, tag)
    try:
        wait_ready(workers)
        return body(workers)
    finally:
        stop_workers(workers)
        forget_queue(args)


# The payments ----------------------------------------------------------------------


def pay_all(args, chosen: list[int], billed_month: tuple[int, str], staff) -> dict[int, float]:
    """Each chosen customer's bill paid in full by bKash, evenly over ``--spread`` s;
    customer id -> when its payment committed (epoch seconds)."""
    from django.db import connection

    from billing.models import Customer, Payment
    from billing.services import payment_record
    from core.enums import PaymentMethod

    year, month = billed_month
    bills = dict(Payment.objects.filter(customer_id__in=chosen, billing_year=year,
                                        billing_month=month)
                 .values_list("customer_id", "bill_amount"))
    customers = Customer.objects.in_bulk(chosen)

    def pay(customer_id: int) -> float:
        try:
            payment_record(customer=customers[customer_id], amount=bills[customer_id],
                           billing_month=month, billing_year=year,
                           payment_method=PaymentMethod.BKASH,
                           transaction_id=f"LAG{customer_id:010d}", entered_by=staff)
            return time.time()
        finally:
            connection.close()

    return paced(args, chosen, PAYMENT_THREADS, pay)


def paced(args, chosen: list[int], threads: int, pay) -> dict[int, float]:
    """``pay(customer_id)`` for each chosen customer, started evenly over ``--spread`` s
    from ``threads`` threads; customer id -> the time it returned."""
    committed: dict[int, float] = {}
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    step = args.spread / len(chosen)

    def paid(index: int, customer_id: int) -> None:
        pause = start + index * step - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        at = pay(customer_id)
        with lock:
            committed[customer_id] = at

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(paid, i, c) for i, c in enumerate(chosen)]:
            future.result()
    return committed


def pay_online(args, chosen: list[int], billed_month: tuple[int, str], bkash) -> dict[int, float]:
    """Each chosen customer pays their bill online, evenly over ``--spread`` s: the
    checkout is created at the fake bKash, the customer approves, and bKash's redirect
    arrives three times at once (a reload, a double tap); customer id -> when they
    approved at bKash (the provider's success)."""
    from django.db import connection

    from billing.models import Customer, Payment
    from billing.online_payments import online_payment_returned, online_payment_start

    year, month = billed_month
    bills = dict(Payment.objects.filter(customer_id__in=chosen, billing_year=year,
                                        billing_month=month).values_list("customer_id", "uid"))
    customers = Customer.objects.in_bulk(chosen)

    def come_back(online, callback: dict) -> None:
        try:
            online_payment_returned(online_payment=online, callback=callback)
        finally:
            connection.close()

    def pay(customer_id: int) -> float:
        try:
            online = online_payment_start(customer=customers[customer_id], provider="BKASH",
                                          payment_uids=[bills[customer_id]])
        finally:
            connection.close()
        url = bkash.customer_pays(online.provider_payment_id)
        approved_at = time.time()
        callback = dict(parse_qsl(urlsplit(url).query))
        with ThreadPoolExecutor(3) as redirects:
            list(redirects.map(lambda _: come_back(online, callback), range(3)))
        return approved_at

    return paced(args, chosen, ONLINE_THREADS, pay)


def online_lines(chosen: list[int]) -> None:
    """Every online payment SUCCEEDED, credited by exactly one line of its amount."""
    from django.db.models import Count, Sum

    from billing.models import OnlinePayment

    rows = OnlinePayment.objects.filter(customer_id__in=chosen).annotate(
        lines=Count("collections"), credited=Sum("collections__amount"))
    wrong = [row.pk for row in rows if row.state != "SUCCEEDED" or row.lines != 1
             or row.credited != row.amount]
    if wrong or rows.count() != len(chosen):
        raise BenchError(f"online payments: {rows.count()} for {len(chosen)} customers, "
                         f"{len(wrong)} not credited exactly once")
    print(f"{len(chosen)} online payments, each credited exactly once, by one line of its "
          f"amount (3 redirects each)")


def confirmations(chosen: list[int]) -> dict[int, float]:
    from billing.models import ConnectionChange

    rows = ConnectionChange.objects.filter(
        customer_id__in=chosen, reason=ConnectionChange.Reason.PAYMENT,
        confirmed_at__isnull=False).values_list("customer_id", "confirmed_at")
    return {customer_id: at.timestamp() for customer_id, at in rows}


def router_enabled_at(enabling: dict[int, tuple], since: float) -> dict[int, float]:
    """When each customer's router answered the call that switched it on."""
    found: dict[int, float] = {}
    for customer_id, (fake, method, path) in enabling.items():
        for at, request in fake.timed_calls():
            if at >= since and request.method == method and request.path == path \
                    and request.status < 300:
                found[customer_id] = at
                break
    return found


def calls_between(fakes, start: float, end: float) -> int:
    return sum(1 for fake in fakes for at, _ in fake.timed_calls() if start <= at <= end)


# Checks and figures ----------------------------------------------------------------


def check_settled(enabling: dict[int, tuple], billed_month: tuple[int, str]) -> None:
    """Every paid customer active, switched on at its router, its bill paid exactly."""
    from billing.enforcement import blocked_list
    from billing.models import Collection, Customer, Payment

    chosen = list(enabling)
    year, month = billed_month
    problems = []
    inactive = Customer.objects.filter(pk__in=chosen, is_active=False).count()
    if inactive:
        problems.append(f"{inactive} customers still switched off in billing")
    records = Payment.objects.filter(customer_id__in=chosen, billing_year=year,
                                     billing_month=month)
    wrong = [p.pk for p in records if not p.paid or p.amount != p.bill_amount]
    if wrong or records.count() != len(chosen):
        problems.append(f"{len(wrong)} records not paid exactly, {records.count()} records")
    lines = Collection.objects.filter(payment__in=records).count()
    if lines != len(chosen):
        problems.append(f"{lines} ledger lines for {len(chosen)} payments")
    customers = Customer.objects.in_bulk(chosen)
    for customer_id, (fake, _, path) in enabling.items():
        customer = customers[customer_id]
        with fake._lock:
            if customer.connection_type == "PPPoE":
                secret = fake.secrets[path.rsplit("/", 1)[1]]
                if secret["disabled"] != "false":
                    problems.append(f"customer {customer_id}: secret still disabled")
            elif any(row.get("address") == customer.ip_address
                     and row.get("list") == blocked_list() for row in fake.addresses.values()):
                problems.append(f"customer {customer_id}: address still blocked")
    if problems:
        raise BenchError("settlement check failed: " + "; ".join(problems[:10]))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def lag_figures(values: list[float]) -> dict:
    return {"p50": percentile(values, 0.50), "p90": percentile(values, 0.90),
            "p99": percentile(values, 0.99), "max": max(values),
            "mean": statistics.fmean(values)}


def run(args) -> int:
    prepare_database(args)
    setup_django(args)
    from django.conf import settings

    undo_earlier_runs()
    staff = staff_user()
    bkash = None
    if args.online:
        from tests.payments.fake_bkash import FakeBkash

        bkash = FakeBkash().start()
        bkash.delay = args.bkash_delay
        for name, value in bkash.settings().items():
            setattr(settings, name, value)
        print(f"fake bKash, {args.bkash_delay * 1000:.0f} ms per call; each redirect x3")
    fakes, routers, placed = put_on_routers(args, timed_fake_class())
    print(f"{args.routers} fake routers, {placed:,} customers on them "
          f"({args.secrets:,} each), {args.delay * 1000:.0f} ms per call, "
          f"{args.calls_per_second} calls/s per router; network attempt deadline "
          f"{settings.NETWORK_ATTEMPT_SECONDS:.0f} s")
    for fake in fakes:
        fake.delay = args.delay
    rng = random.Random(1)
    months = Months()
    workdir = Path(tempfile.mkdtemp(prefix="bench-lag-"))
    try:
        first = months.next()
        run_a = with_workers(args, workdir, "a", lambda w: bill_run(args, first, w))
        print(f"run A (no other load), {run_a['month']}: {run_a['records']:,} records in "
              f"{run_a['seconds']:.1f} s, {run_a['rate']:,.0f} records/s")
        enabling = suspend(args, rng, first, fakes, routers)
        chosen = list(enabling)
        print(f"suspended {len(chosen)} customers billed in run A "
              f"({sum(1 for e in enabling.values() if e[1] == 'PATCH')} PPPoE, "
              f"{sum(1 for e in enabling.values() if e[1] == 'DELETE')} STATIC)")
        load = {}

        def pay_during(workers):
            def during(run):
                load["first_payment_at"] = time.time()
                load["committed"] = (pay_online(args, chosen, first, bkash) if bkash
                                     else pay_all(args, chosen, first, staff))
                load["last_commit_at"] = max(load["committed"].values())
                load["confirmed"] = wait_for(
                    "every payment's router confirmation",
                    lambda: (lambda found: found if len(found) == len(chosen) else None)(
                        confirmations(chosen)),
                    workers, args.timeout, every=0.5)
                load["confirmed_all_at"] = max(load["confirmed"].values())
                return None
            return bill_run(args, months.next(), workers, during)

        run_b = with_workers(args, workdir, "b", pay_during)
        run_c_month = months.next()
        run_c = with_workers(args, workdir, "c", lambda w: bill_run(args, run_c_month, w))
        check_settled(enabling, first)
        if bkash:
            online_lines(chosen)
        router_at = router_enabled_at(enabling, load["first_payment_at"])
    finally:
        for fake in fakes:
            fake.stop()
        if bkash:
            bkash.stop()
    committed, confirmed = load["committed"], load["confirmed"]
    lags = [confirmed[c] - committed[c] for c in chosen]
    router_lags = [router_at[c] - committed[c] for c in chosen if c in router_at]
    inside = sum(1 for c in chosen if run_b["started_at"] <= committed[c] <= run_b["finished_at"])
    confirmed_inside = sum(1 for c in chosen if confirmed[c] <= run_b["finished_at"])
    calls = calls_between(fakes, load["first_payment_at"], load["confirmed_all_at"])
    lag, router_lag = lag_figures(lags), lag_figures(router_lags)
    baseline = statistics.fmean([run_a["rate"], run_c["rate"]])
    print(f"run B (with the payments), {run_b['month']}: {run_b['records']:,} records in "
          f"{run_b['seconds']:.1f} s, {run_b['rate']:,.0f} records/s")
    print(f"run C (no other load), {run_c['month']}: {run_c['records']:,} records in "
          f"{run_c['seconds']:.1f} s, {run_c['rate']:,.0f} records/s")
    print(f"bill run rate with the payments / without (mean of A and C): "
          f"{run_b['rate'] / baseline:.3f}")
    print(f"{len(chosen)} payments over {load['last_commit_at'] - load['first_payment_at']:.1f} s;"
          f" {inside} committed while run B was running, {confirmed_inside} confirmed before "
          f"it ended")
    start = "approved at bKash" if bkash else "payment commit"
    print(f"lag, {start} -> change confirmed (router read back): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in lag.items()))
    print(f"lag, {start} -> router answered the enabling call ({len(router_lags)} "
          "found): " + ", ".join(f"{k} {v:.2f} s" for k, v in router_lag.items()))
    print(f"router calls while they were carried out: {calls} "
          f"({calls / len(chosen):.2f} per customer)")
    met = lag["p99"] < TARGET_P99_SECONDS and inside == len(chosen)
    print(f"target p99 < {TARGET_P99_SECONDS:.0f} s with every payment inside the bill run: "
          f"{'met' if met else 'NOT MET'}")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump({"args": {k: v for k, v in vars(args).items()},
                       "runs": {"a": run_a, "b": run_b, "c": run_c},
                       "rate_ratio": run_b["rate"] / baseline, "lag": lag,
                       "router_lag": router_lag, "calls": calls,
                       "calls_per_customer": calls / len(chosen),
                       "payments_inside_run": inside, "met": met}, out, indent=2)
    return 0 if met else 1


def main() -> int:
    try:
        return run(parse_args())
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
