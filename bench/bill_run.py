#!/usr/bin/env python
"""A month's bill run through the queue vs a naive loop vs one raw statement.

    .venv/bin/python bench/bill_run.py --customers 100000
    .venv/bin/python bench/bill_run.py --customers 1000000 [--chunk-sizes 5000,20000]

What it does, start to finish (every wait is bounded in time):

1. Creates the PostgreSQL database ``isp_bench_bills`` if it is missing, migrates it and
   seeds it with ``manage.py seed_demo --customers N --months 0`` (every customer has a
   phone and an e-mail; ~93% are switched on, so billable; no payment record yet). A
   rerun at the same size reuses the data; another size drops and reseeds it.
   ``VACUUM ANALYZE`` follows.
2. In each round, for each measurement: empties the bench months' records and notices
   (the seeded history, if any, stays), ``VACUUM ANALYZE`` + ``CHECKPOINT``, and gives
   the measurement a billing month of its own (from 2090 on), so every measurement
   starts from zero records for its month:

   a. the bill run through the queue: two fresh Celery worker processes
      (``celery -A tasks worker -c 2``, or two ``-c 1`` workers with
      ``--worker-mode 2x1``) on a queue of this run's own; this process calls
      ``billing.bills.bill_run_start()`` (it publishes on commit) and polls the BillRun
      row until SUCCESS. Time: from just before ``bill_run_start`` to the run's
      ``finished_at`` (the health check included; the reconciliation it then starts is
      not). The workers' memory is sampled every 0.2 s (RSS and PSS per process, and
      the kernel's VmHWM peak), then the workers are killed: what they would do next
      (sending the notices, the reconciliation) is not measured here;
   b. naive: ``Payment.objects.get_or_create(...)`` per billable customer, in
      autocommit (one transaction per record), payment records only; on a sample of
      the first ``--naive-sample`` billable customers when there are more;
   c. raw: one ``INSERT INTO billing_payment ... SELECT ... ON CONFLICT DO NOTHING`` for
      the whole month: the floor, payment records only;
   c+n. (information, no target) the bill run's own chunk statement (records and their
      notices, one CTE) over the whole month at once, in this process.

   With ``--rounds`` > 1 the order is reversed every other round (a b c c+n, then
   c+n c b a, ...) so the noise of a shared machine falls on all of them.
3. Notices: writes ``--notifications`` pending SMS notices (BILL_ISSUED, on payment
   records it makes with the raw statement) and times
   ``billing.notifications.notifications_send_due()`` in this process with
   ``SMS_BACKEND=logging``, twice: with the log level at WARNING (the backend's INFO line
   is dropped: the dispatcher's own cost) and with the backend's logger at INFO into a
   file (formatted and written, not to a terminal).
4. Prints records/s of a, b, c, the ratios a/c and a/b, the workers' peak memory, notices/s
   and whether the targets hold: a >= 0.5 x c (the target is set at 1,000,000 customers)
   and every worker process under 300 MB.

Exit status: 0 targets met, 1 a target missed, 2 the run failed. Needs PostgreSQL and
Redis on 127.0.0.1 (trust auth for ``postgres``) and the project installed in ``.venv``.
Uses Redis database 11 (``--redis-url``) and deletes its queue's keys there at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    ROOT,
    VENV_BIN,
    BenchError,
    bench_settings,
    drop_database,
    ensure_database,
    pg,
    run_manage,
)

BENCH_YEAR = 2090  # billing years from here on are the benchmark's own
TARGET_RATIO = 0.5
TARGET_MEMORY_MB = 300.0
TARGET_AT = 1_000_000
SAMPLE_EVERY = 0.2
MONTHS = ("JANUARY", "FEBRUARY", "MARCH", "APRIL", "MAY", "JUNE", "JULY", "AUGUST",
          "SEPTEMBER", "OCTOBER", "NOVEMBER", "DECEMBER")
# The billable rule of billing.bills.billable_customers, in SQL.
BILLABLE = ("c.status = 'ACTIVE' AND c.is_active AND NOT c.is_free AND p.price > 0")
RAW_INSERT = f"""
    INSERT INTO billing_payment
        (uid, created_at, updated_at, customer_id, billing_year, billing_month, bill_amount,
         amount, waived, paid, payment_method, transaction_id, note)
    SELECT gen_random_uuid(), %(now)s, %(now)s, c.id, %(year)s, %(month)s, p.price,
           0, false, false, 'OTHER', '', %(note)s
    FROM billing_customer c JOIN billing_package p ON p.id = c.package_id
    WHERE {BILLABLE}
    ON CONFLICT DO NOTHING
"""
# Variables of core.settings a calling shell may carry; the bench sets its own.
DROPPED_PREFIXES = ("CELERY_", "SMS_", "NOTIFICATION_", "MIKROTIK_")
DROPPED_VARS = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CACHE_URL",
                "CACHE_KEY_PREFIX", "BILL_RUN_CHUNK_SIZE", "CONN_MAX_AGE", "DEBUG", "LOG_LEVEL",
                "EMAIL_BACKEND", "NETWORK_BACKEND", "BUSINESS_TIME_ZONE", "SECRET_KEY")


# Environment, database -----------------------------------------------------------


def bench_env(args, *, chunk_size: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in DROPPED_VARS and not k.startswith(DROPPED_PREFIXES)}
    bench_settings(
        env, f"{args.pg_server}/{args.db_name}", args.redis_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        CELERY_QUEUE_PREFIX=f"{args.queue}.",
        SMS_BACKEND="logging",
    )
    if chunk_size:
        env["BILL_RUN_CHUNK_SIZE"] = str(chunk_size)
    return env


def seeded(args) -> tuple[int, int]:
    """(customers, payment records outside the bench years)."""
    with pg(f"{args.pg_server}/{args.db_name}") as conn:
        customers = conn.execute("SELECT count(*) FROM billing_customer").fetchone()[0]
        history = conn.execute("SELECT count(*) FROM billing_payment WHERE billing_year < %s",
                               (BENCH_YEAR,)).fetchone()[0]
    return customers, history


def prepare_database(args) -> None:
    env = bench_env(args)
    if args.drop_db:
        drop_database(args.pg_server, args.db_name)
    created = ensure_database(args.pg_server, args.db_name)
    run_manage(env, "migrate", "--noinput")
    wanted = (args.customers, args.customers * args.months)
    state = seeded(args)
    if state == wanted:
        print(f"database {args.db_name}: already seeded ({args.customers:,} customers, "
              f"{args.months} month(s) of history)")
    else:
        if not created and state[0]:
            print(f"database {args.db_name}: holds {state[0]:,} customers / {state[1]:,} "
                  "records, not the size asked for: dropping it")
            drop_database(args.pg_server, args.db_name)
            ensure_database(args.pg_server, args.db_name)
            run_manage(env, "migrate", "--noinput")
        print(f"database {args.db_name}: seeding {args.customers:,} customers, "
              f"{args.months} month(s) of history")
        started = time.monotonic()
        out = run_manage(env, "seed_demo", "--customers", str(args.customers), "--months",
                         str(args.months), "--seed", "1", "--no-progress", timeout=3600)
        print("  " + out.strip().replace("\n", "\n  "))
        print(f"  seed_demo took {time.monotonic() - started:.1f} s (wall, incl. start-up)")
    started = time.monotonic()
    with pg(f"{args.pg_server}/{args.db_name}") as conn:
        conn.execute("VACUUM (ANALYZE) billing_package, billing_customer, billing_payment, "
                     "billing_notification, billing_collection")
    print(f"  VACUUM ANALYZE: {time.monotonic() - started:.1f} s")


def setup_django(args) -> None:
    os.environ.clear()
    os.environ.update(bench_env(args))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import tasks  # noqa: F401 - the Celery app, configured from the settings


def sql(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def clear_bench_months() -> float:
    """Drop the bench months' records and notices; VACUUM ANALYZE; CHECKPOINT."""
    started = time.monotonic()
    only_bench = not sql("SELECT EXISTS (SELECT 1 FROM billing_payment WHERE billing_year < %s)"
                         " OR EXISTS (SELECT 1 FROM billing_collection)"
                         " OR EXISTS (SELECT 1 FROM billing_notification"
                         "            WHERE payment_id IS NULL)", [BENCH_YEAR])[0][0]
    # Online payments in a bench database are all a bench's own (router_lag --online).
    # TRUNCATE for their answers: that log refuses row deletes (it is append-only).
    online = "billing_onlinepaymentevent, billing_onlinepayment_payments"
    if only_bench:  # seeded with --months 0: every record and notice is the bench's own
        sql(f"TRUNCATE {online}, billing_onlinepayment, billing_notification, "
            "billing_collection, billing_payment")
    else:
        sql(f"TRUNCATE {online}")
        sql("DELETE FROM billing_collection WHERE online_payment_id IS NOT NULL")
        sql("DELETE FROM billing_onlinepayment")
        sql("DELETE FROM billing_notification n USING billing_payment b "
            "WHERE n.payment_id = b.id AND b.billing_year >= %s", [BENCH_YEAR])
        sql("DELETE FROM billing_collection l USING billing_payment b "
            "WHERE l.payment_id = b.id AND b.billing_year >= %s", [BENCH_YEAR])
        sql("DELETE FROM billing_payment WHERE billing_year >= %s", [BENCH_YEAR])
    sql("VACUUM (ANALYZE) billing_payment, billing_notification")
    sql("CHECKPOINT")
    return time.monotonic() - started


class Months:
    """A fresh (year, month) for every measurement of the run."""

    def __init__(self):
        self.n = 0

    def next(self) -> tuple[int, str]:
        year, month = BENCH_YEAR + self.n // 12, MONTHS[self.n % 12]
        self.n += 1
        return year, month


def billable_count() -> int:
    return sql(f"SELECT count(*) FROM billing_customer c JOIN billing_package p "
               f"ON p.id = c.package_id WHERE {BILLABLE}")[0][0]


def month_counts(year: int, month: str) -> tuple[int, int]:
    """(payment records, notices) of the month."""
    records = sql("SELECT count(*) FROM billing_payment WHERE billing_year = %s "
                  "AND billing_month = %s", [year, month])[0][0]
    notices = sql("SELECT count(*) FROM billing_notification n JOIN billing_payment b "
                  "ON b.id = n.payment_id WHERE b.billing_year = %s AND b.billing_month = %s",
                  [year, month])[0][0]
    return records, notices


# Workers and their memory ---------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    values[name] = int(value.split()[0])  # kB
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def _proc_pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


@dataclass
class ProcMemory:
    pid: int
    role: str
    rss_kb: int = 0  # peak of the samples
    pss_kb: int = 0
    hwm_kb: int = 0  # the kernel's peak RSS (VmHWM), last read


@dataclass
class MemorySampler:
    """Samples the process trees of ``roots`` every SAMPLE_EVERY seconds."""

    roots: list[int]
    procs: dict[int, ProcMemory] = field(default_factory=dict)
    tree_rss_kb: int = 0
    tree_pss_kb: int = 0
    mark: dict[str, dict] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        tree = _children()
        rss_sum = pss_sum = 0
        for root in self.roots:
            todo = [(root, "main")]
            while todo:
                pid, role = todo.pop()
                status = _proc_status(pid)
                if not status:
                    continue
                pss = _proc_pss(pid) or 0
                proc = self.procs.setdefault(pid, ProcMemory(pid, role))
                proc.rss_kb = max(proc.rss_kb, status.get("VmRSS", 0))
                proc.hwm_kb = max(proc.hwm_kb, status.get("VmHWM", 0))
                proc.pss_kb = max(proc.pss_kb, pss)
                rss_sum += status.get("VmRSS", 0)
                pss_sum += pss
                todo += [(child, "pool") for child in tree.get(pid, [])]
        self.tree_rss_kb = max(self.tree_rss_kb, rss_sum)
        self.tree_pss_kb = max(self.tree_pss_kb, pss_sum)

    def snapshot(self, name: str) -> None:
        self.sample()
        self.mark[name] = self.summary()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def summary(self) -> dict:
        procs = sorted(self.procs.values(), key=lambda p: (p.role != "main", p.pid))
        return {
            "processes": [{"pid": p.pid, "role": p.role, "peak_rss_mb": p.rss_kb / 1024,
                           "peak_pss_mb": p.pss_kb / 1024, "vmhwm_mb": p.hwm_kb / 1024}
                          for p in procs],
            "max_process_mb": max((max(p.hwm_kb, p.rss_kb) for p in procs), default=0) / 1024,
            "tree_rss_mb": self.tree_rss_kb / 1024,
            "tree_pss_mb": self.tree_pss_kb / 1024,
        }


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            text = []
        return f"--- last lines of {self.log} ---\n" + "\n".join(text)


# Every workload's queue (core.settings TASK_QUEUES and the default one).
BENCH_QUEUES = ("bills", "network", "notifications", "default")


def start_workers(args, chunk_size: int, workdir: Path, tag: str) -> list[Worker]:
    env = bench_env(args, chunk_size=chunk_size)
    env["LOG_LEVEL"] = "INFO"  # as `make worker`: tasks received/succeeded, into a file
    layout = [("c2", 2)] if args.worker_mode == "c2" else [("w1", 1), ("w2", 1)]
    workers = []
    for suffix, concurrency in layout:
        name = f"bench-bills-{suffix}-{os.getpid()}@%h"
        log = workdir / f"worker-{tag}-{suffix}.log"
        argv = [str(VENV_BIN / "celery"), "-A", "tasks", "worker", "-c", str(concurrency),
                "-Q", ",".join(f"{args.queue}.{q}" for q in BENCH_QUEUES), "-n", name,
                "--without-gossip", "--without-mingle", "-E", "--loglevel=INFO"]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        workers.append(Worker(name, proc, log))
    return workers


def wait_ready(workers: list[Worker], timeout: float = 90.0) -> None:
    """Every worker answers a ping, and all its pool processes are up."""
    import socket

    import tasks

    host = socket.gethostname()
    names = {w.name.replace("%h", host) for w in workers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            if not w.alive():
                raise BenchError(f"worker {w.name} exited with {w.proc.returncode}\n{w.tail()}")
        try:
            replies = tasks.app.control.ping(destination=list(names), timeout=1.0)
        except Exception:  # the broker, briefly
            replies = []
        answered = {name for reply in replies for name in reply}
        if answered >= names:
            return
        time.sleep(0.3)
    raise BenchError("workers not ready in time\n" + "\n".join(w.tail() for w in workers))


def stop_workers(workers: list[Worker]) -> None:
    """Cold shutdown (SIGQUIT: running tasks are not awaited), then SIGKILL to the group."""
    for w in workers:
        if w.alive():
            try:
                os.killpg(w.proc.pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for w in workers:
        try:
            w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
    for w in workers:
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)  # the pool processes too, if any is left
        except ProcessLookupError:
            pass
        try:
            w.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def forget_queue(args) -> None:
    """Delete the queue and what kombu keeps for it in Redis (unacked messages too)."""
    import redis

    sys.path.insert(0, str(ROOT))
    from tests.redis_broker import forget_queue_keys

    try:
        forget_queue_keys(args.redis_url, args.queue)
    except redis.RedisError as error:
        print(f"  (could not clean Redis: {error})")


# Measurements ---------------------------------------------------------------------


@dataclass
class Result:
    kind: str  # "a", "b", "c", "c+n"
    label: str
    records: int
    seconds: float
    notices: int = 0
    round: int = 0
    chunk_size: int | None = None
    sample: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def measure_bill_run(args, months: Months, chunk_size: int, workdir: Path, rnd: int,
                     expected: int) -> Result:
    from django.db.models import Max, Min

    from billing.bills import bill_run_start
    from billing.models import BillRun, BillRunChunk, Notification, ReconciliationRun

    year, month = months.next()
    forget_queue(args)
    workers = start_workers(args, chunk_size, workdir, f"r{rnd}-{chunk_size}")
    sampler = MemorySampler([w.proc.pid for w in workers])
    sampler.start()
    try:
        wait_ready(workers)
        sampler.snapshot("ready")
        started_wall = time.time()
        started = time.monotonic()
        run = bill_run_start(requested_by=None, year=year, month=month)
        deadline = started + args.timeout
        state = None
        while time.monotonic() < deadline:
            state = BillRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
            if state in (BillRun.State.SUCCESS, BillRun.State.FAILED):
                break
            for w in workers:
                if not w.alive():
                    raise BenchError(f"worker died during the run\n{w.tail()}")
            time.sleep(0.2)
        polled = time.monotonic() - started
        sampler.snapshot("run")
        run.refresh_from_db()
        if run.state != BillRun.State.SUCCESS:
            raise BenchError(f"bill run {run.pk} ended {run.state} after {polled:.1f} s: "
                             f"{run.chunks_done}/{run.chunks_total} chunks, {run.error}\n"
                             + "\n".join(w.tail() for w in workers))
        sent_by_then = Notification.objects.filter(
            state__in=[Notification.State.SENT, Notification.State.SENDING]).count()
        time.sleep(args.after_run)  # the workers carry on (notices): memory, not time
        sampler.snapshot("after")
    finally:
        sampler.stop()
        stop_workers(workers)
        forget_queue(args)
    seconds = run.finished_at.timestamp() - started_wall
    records, notices = month_counts(year, month)
    chunks = BillRunChunk.objects.filter(run=run).aggregate(first=Min("done_at"),
                                                           last=Max("done_at"))
    recon = ReconciliationRun.objects.filter(
        trigger=f"BILL_RUN {month} {year}").values_list("created_at", flat=True).first()
    breakdown = {
        "queue_and_plan_s": run.started_at.timestamp() - started_wall,
        "chunks_s": chunks["last"].timestamp() - run.started_at.timestamp(),
        "first_chunk_done_s": chunks["first"].timestamp() - run.started_at.timestamp(),
        "health_check_s": run.finished_at.timestamp() - chunks["last"].timestamp(),
        "polled_s": polled,
    }
    problems = []
    if run.created_count != run.billable_count or run.billable_count != expected:
        problems.append(f"created {run.created_count}, billable {run.billable_count}, "
                        f"expected {expected}")
    if records != expected:
        problems.append(f"{records} records for the month, expected {expected}")
    if notices != 2 * expected:
        problems.append(f"{notices} notices for the month, expected {2 * expected}")
    if recon is None:
        problems.append("no reconciliation was started")
    if problems:
        raise BenchError("bill run check failed: " + "; ".join(problems))
    return Result("a", f"bill run, chunks of {chunk_size:,}", run.created_count, seconds,
                  notices=notices, round=rnd, chunk_size=chunk_size, extra={
                      "chunks": run.chunks_total, "breakdown": breakdown,
                      "memory": sampler.mark, "sent_by_success": sent_by_then,
                      "reconciliation_started": recon is not None,
                      "month": f"{month} {year}"})


def measure_naive(args, months: Months, rnd: int, billable: int) -> Result:
    from billing.bills import bill_note, billable_customers
    from billing.models import Payment
    from core.enums import PaymentMethod

    year, month = months.next()
    sample = args.naive_sample if args.naive_sample else billable
    customers = billable_customers().select_related("package").order_by("pk")[:sample]
    note = bill_note(month, year)
    created_count = 0
    started = time.monotonic()
    for customer in customers.iterator(chunk_size=2000):
        _payment, created = Payment.objects.get_or_create(
            customer=customer, billing_year=year, billing_month=month, voided_at=None,
            defaults={"bill_amount": customer.package.price,
                      "payment_method": PaymentMethod.OTHER, "note": note},
        )
        created_count += created
    seconds = time.monotonic() - started
    if created_count != min(sample, billable):
        raise BenchError(f"naive loop created {created_count} of {min(sample, billable)}")
    return Result("b", "naive get_or_create loop", created_count, seconds, round=rnd,
                  sample=created_count < billable, extra={"month": f"{month} {year}"})


def measure_raw(args, months: Months, rnd: int, expected: int) -> Result:
    from django.db import connection
    from django.utils import timezone

    from billing.bills import bill_note

    year, month = months.next()
    started = time.monotonic()
    with connection.cursor() as cursor:  # autocommit: the commit is in the time
        cursor.execute(RAW_INSERT, {"now": timezone.now(), "year": year, "month": month,
                                    "note": bill_note(month, year)})
        created = cursor.rowcount
    seconds = time.monotonic() - started
    if created != expected:
        raise BenchError(f"raw statement made {created} records, expected {expected}")
    return Result("c", "raw INSERT ... SELECT (records only)", created, seconds, round=rnd,
                  extra={"month": f"{month} {year}"})


def measure_raw_with_notices(args, months: Months, rnd: int, expected: int) -> Result | None:
    """The bill run's chunk statement (records + notices) over every customer at once."""
    from django.db import connection
    from django.utils import timezone

    from billing import bills

    insert, notices = getattr(bills, "_INSERT_BILLS", None), getattr(bills, "_INSERT_NOTICES",
                                                                     None)
    if not insert or not notices:
        return None
    year, month = months.next()
    now = timezone.now()
    first, last = sql("SELECT min(id), max(id) FROM billing_customer")[0]
    statement = (f"WITH created AS ({insert.format(uuid='gen_random_uuid()', only='')}), "
                 f"notices AS ({notices.format(bills='created')}) SELECT count(*) FROM created")
    params = [now, now, year, month, "OTHER", bills.bill_note(month, year), first, last,
              now, now, now, now]
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        created = cursor.fetchone()[0]
    seconds = time.monotonic() - started
    _records, written = month_counts(year, month)
    if created != expected or written != 2 * expected:
        raise BenchError(f"chunk statement over the month: {created} records, {written} "
                         f"notices, expected {expected} and {2 * expected}")
    return Result("c+n", "chunk statement, whole month (records + notices)", created, seconds,
                  notices=written, round=rnd, extra={"month": f"{month} {year}"})


def measure_notifications(args, months: Months, mode: str, workdir: Path) -> dict:
    """``--notifications`` pending SMS notices, sent by notifications_send_due()."""
    import logging

    from django.utils import timezone

    from billing.bills import bill_note
    from billing.notifications import notifications_send_due

    wanted = args.notifications
    clear_bench_months()
    # Payment records to hang the notices on (one month holds ~93% of the customers).
    made = 0
    while made < wanted:
        year, month = months.next()
        made += sql(RAW_INSERT, {"now": timezone.now(), "year": year, "month": month,
                                 "note": bill_note(month, year)})
    written = sql("""
        INSERT INTO billing_notification (customer_id, payment_id, event, event_key, channel,
            state, attempts, next_attempt_at, last_error, created_at)
        SELECT b.customer_id, b.id, 'BILL_ISSUED', 'bill:' || b.id, 'SMS', 'PENDING', 0,
               now() - interval '1 minute', '', now()
        FROM billing_payment b WHERE b.billing_year >= %s ORDER BY b.id LIMIT %s
    """, [BENCH_YEAR, wanted])
    sql("VACUUM (ANALYZE) billing_payment, billing_notification")
    sql("CHECKPOINT")

    messaging = logging.getLogger("billing.messaging")
    handler = None
    log_path = workdir / "sms.log"
    if mode == "file":
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        messaging.addHandler(handler)
        messaging.setLevel(logging.INFO)
        messaging.propagate = False
    cpu = time.process_time()
    started = time.monotonic()
    try:
        sent = notifications_send_due()
    finally:
        seconds = time.monotonic() - started
        cpu = time.process_time() - cpu
        if handler:
            messaging.removeHandler(handler)
            handler.close()
            messaging.setLevel(logging.NOTSET)
            messaging.propagate = True
    lines = sum(1 for _ in log_path.open()) if mode == "file" else 0
    if sent != written:
        raise BenchError(f"dispatcher sent {sent} of {written} notices")
    left = sql("SELECT count(*) FROM billing_notification WHERE state <> 'SENT'")[0][0]
    if left:
        raise BenchError(f"{left} notices not SENT after the dispatcher")
    return {"mode": mode, "notices": sent, "seconds": seconds, "rate": sent / seconds,
            "bench_cpu_s": cpu, "log_lines": lines}


# The run --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=0,
                        help="months of seeded history (payment records) per customer (0)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of a, b, c, c+n (order reversed every other round) (1)")
    parser.add_argument("--chunk-sizes", default="5000",
                        help="BILL_RUN_CHUNK_SIZE of the workers: one bill run per size per "
                        "round, comma-separated (5000, the default setting)")
    parser.add_argument("--worker-mode", choices=("c2", "2x1"), default="c2",
                        help="c2: one `celery worker -c 2`; 2x1: two `-c 1` workers (c2)")
    parser.add_argument("--naive-sample", type=int, default=None,
                        help="customers of the naive loop (default: all up to 100,000 "
                        "billable, else the first 20,000)")
    parser.add_argument("--notifications", type=int, default=100_000,
                        help="notices to dispatch; 0: skip (100000)")
    parser.add_argument("--notify-modes", default="quiet,file",
                        help="quiet: log level WARNING; file: the SMS log line at INFO into "
                        "a file (quiet,file)")
    parser.add_argument("--skip", default="", help="comma-separated of a,b,c,c+n to skip")
    parser.add_argument("--after-run", type=float, default=0.0,
                        help="seconds the workers go on (sending notices) after the run's "
                        "SUCCESS before they are stopped, for the memory figure (0)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds a bill run may take (1800)")
    parser.add_argument("--db-name", default="isp_bench_bills")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--drop-db", action="store_true", help="drop and reseed the database")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 5_000_000:
        parser.error("--customers must be in [1, 5000000]")
    if not 0 <= args.months <= 24 or not 1 <= args.rounds <= 10:
        parser.error("--months must be in [0, 24], --rounds in [1, 10]")
    args.chunk_sizes = [int(s) for s in args.chunk_sizes.split(",") if s.strip()]
    if not args.chunk_sizes or not all(100 <= s <= 1_000_000 for s in args.chunk_sizes):
        parser.error("--chunk-sizes: sizes in [100, 1000000]")
    args.notify_modes = [m for m in args.notify_modes.split(",") if m]
    if not set(args.notify_modes) <= {"quiet", "file"}:
        parser.error("--notify-modes: quiet and/or file")
    args.skip = {s for s in args.skip.split(",") if s}
    if not args.skip <= {"a", "b", "c", "c+n"}:
        parser.error("--skip: of a, b, c, c+n")
    if not 0 <= args.notifications <= 1_000_000:
        parser.error("--notifications must be in [0, 1000000]")
    args.queue = f"bench-bills-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return args


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def run(args) -> int:
    load_before = os.getloadavg()
    print(f"bench/bill_run.py: {args.customers:,} customers, rounds {args.rounds}, chunk sizes "
          f"{args.chunk_sizes}, workers {args.worker_mode}, queue {args.queue}")
    prepare_database(args)
    setup_django(args)
    billable = billable_count()
    if args.naive_sample is None:
        args.naive_sample = 0 if billable <= 100_000 else 20_000
    print(f"billable customers: {billable:,}")
    months = Months()
    workdir = Path(tempfile.mkdtemp(prefix="bench-bills-"))
    print(f"worker logs in {workdir}")
    results: list[Result] = []
    steps = [*[("a", cs) for cs in args.chunk_sizes], ("b", None), ("c", None), ("c+n", None)]
    steps = [s for s in steps if s[0] not in args.skip]
    for rnd in range(1, args.rounds + 1):
        order = steps if rnd % 2 else steps[::-1]
        for kind, chunk_size in order:
            cleared = clear_bench_months()
            print(f"\nround {rnd}, {kind}{f' (chunks of {chunk_size:,})' if chunk_size else ''}"
                  f": cleared in {cleared:.1f} s")
            if kind == "a":
                r = measure_bill_run(args, months, chunk_size, workdir, rnd, billable)
                b = r.extra["breakdown"]
                mem = r.extra["memory"]["run"]
                print(f"  {r.records:,} records + {r.notices:,} notices in {r.seconds:.2f} s "
                      f"= {fmt_rate(r.rate)} records/s ({r.extra['chunks']} chunks)")
                print(f"  queue+plan {b['queue_and_plan_s']:.2f} s, chunks {b['chunks_s']:.2f} s "
                      f"(first done after {b['first_chunk_done_s']:.2f} s)")
                print(f"  health check (then the run is SUCCESS) {b['health_check_s']:.2f} s; "
                      f"notices already sent/claimed by then: {r.extra['sent_by_success']:,}")
                for p in mem["processes"]:
                    print(f"  worker {p['role']:<4} pid {p['pid']}: peak RSS "
                          f"{p['peak_rss_mb']:.0f} MB, VmHWM {p['vmhwm_mb']:.0f} MB, peak PSS "
                          f"{p['peak_pss_mb']:.0f} MB")
                print(f"  worker tree: peak RSS sum {mem['tree_rss_mb']:.0f} MB, peak PSS sum "
                      f"{mem['tree_pss_mb']:.0f} MB")
            elif kind == "b":
                r = measure_naive(args, months, rnd, billable)
                print(f"  {r.records:,} records in {r.seconds:.2f} s = {fmt_rate(r.rate)} "
                      f"records/s{' (a sample: the first billable customers)' if r.sample else ''}")
            elif kind == "c":
                r = measure_raw(args, months, rnd, billable)
                print(f"  {r.records:,} records in {r.seconds:.2f} s = {fmt_rate(r.rate)} "
                      "records/s")
            else:
                r = measure_raw_with_notices(args, months, rnd, billable)
                if r is None:
                    print("  skipped: billing.bills has no _INSERT_BILLS/_INSERT_NOTICES")
                    continue
                print(f"  {r.records:,} records + {r.notices:,} notices in {r.seconds:.2f} s "
                      f"= {fmt_rate(r.rate)} records/s")
            results.append(r)

    notify = []
    for mode in args.notify_modes if args.notifications else []:
        print(f"\nnotices: {args.notifications:,} pending SMS, notifications_send_due(), "
              f"log {'WARNING (the INFO line dropped)' if mode == 'quiet' else 'INFO to a file'}")
        n = measure_notifications(args, months, mode, workdir)
        notify.append(n)
        print(f"  {n['notices']:,} sent in {n['seconds']:.2f} s = {fmt_rate(n['rate'])} "
              f"notices/s (bench process CPU {n['bench_cpu_s']:.1f} s)")
    clear_bench_months()
    load_after = os.getloadavg()

    # Summary ------------------------------------------------------------------
    def mean_rate(kind, chunk_size=None):
        rates = [r.rate for r in results if r.kind == kind and r.chunk_size == chunk_size]
        return statistics.fmean(rates) if rates else None

    print(f"\n== {args.customers:,} customers ({billable:,} billable), {args.rounds} round(s), "
          f"workers {'1 x -c 2' if args.worker_mode == 'c2' else '2 x -c 1'} ==")
    print(f"{'measurement':<52} {'records/s':>10} {'runs (s)':>24}")
    for kind, cs in [("a", cs) for cs in args.chunk_sizes] + [("b", None), ("c", None),
                                                                 ("c+n", None)]:
        rs = [r for r in results if r.kind == kind and r.chunk_size == cs]
        if not rs:
            continue
        secs = ", ".join(f"{r.seconds:.1f}" for r in rs)
        label = rs[0].label + (" [sample]" if rs[0].sample else "")
        print(f"{kind + ' ' + label:<52} {fmt_rate(mean_rate(kind, cs)):>10} {secs:>24}")
    c_rate, b_rate = mean_rate("c"), mean_rate("b")
    verdict = {}
    missed = []
    for cs in args.chunk_sizes:
        a_rate = mean_rate("a", cs)
        if a_rate is None:
            continue
        mem = max(r.extra["memory"]["run"]["max_process_mb"] for r in results
                  if r.kind == "a" and r.chunk_size == cs)
        tree_rss = max(r.extra["memory"]["run"]["tree_rss_mb"] for r in results
                       if r.kind == "a" and r.chunk_size == cs)
        tree_pss = max(r.extra["memory"]["run"]["tree_pss_mb"] for r in results
                       if r.kind == "a" and r.chunk_size == cs)
        after = max(r.extra["memory"].get("after", {}).get("max_process_mb", 0)
                    for r in results if r.kind == "a" and r.chunk_size == cs)
        ratio_c = a_rate / c_rate if c_rate else None
        ratio_b = a_rate / b_rate if b_rate else None
        cn = mean_rate("c+n")
        ok_ratio = ratio_c is not None and ratio_c >= TARGET_RATIO
        ok_mem = mem < TARGET_MEMORY_MB
        verdict[cs] = {"a_rate": a_rate, "a_over_c": ratio_c, "a_over_b": ratio_b,
                       "a_over_cn": a_rate / cn if cn else None,
                       "max_worker_process_mb": mem, "max_worker_process_after_mb": after,
                       "worker_tree_rss_mb": tree_rss, "worker_tree_pss_mb": tree_pss,
                       "ratio_ok": ok_ratio, "memory_ok": ok_mem}
        print(f"chunks of {cs:,}: a/c = {ratio_c:.2f}" if ratio_c else f"chunks of {cs:,}:",
              end="")
        print(f", a/b = {ratio_b:.1f}" if ratio_b else "", end="")
        print(f", a/(c+n) = {a_rate / cn:.2f}" if cn else "", end="")
        print(f"; peak worker process {mem:.0f} MB"
              + (f" ({after:.0f} MB after {args.after_run:g} s more)" if args.after_run else "")
              + f"; whole worker tree: PSS sum {tree_pss:.0f} MB, RSS sum {tree_rss:.0f} MB "
              "(counts the pages the pool shares with its parent once per process)")
        print(f"  target a >= {TARGET_RATIO} x c"
              f"{'' if args.customers >= TARGET_AT else ' (set at 1,000,000 customers)'}: "
              f"{'met' if ok_ratio else 'MISSED'}; memory < {TARGET_MEMORY_MB:.0f} MB per worker "
              f"process: {'met' if ok_mem else 'MISSED'}; for the whole tree (PSS): "
              f"{'met' if tree_pss < TARGET_MEMORY_MB else 'MISSED'}")
        if not ok_mem or (not ok_ratio and args.customers >= TARGET_AT):
            missed.append(cs)
    for n in notify:
        print(f"notices ({n['mode']}): {fmt_rate(n['rate'])} notices/s "
              f"({n['notices']:,} in {n['seconds']:.1f} s)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs)")

    if args.json:
        args.json.write_text(json.dumps({
            "customers": args.customers, "billable": billable, "rounds": args.rounds,
            "worker_mode": args.worker_mode, "chunk_sizes": args.chunk_sizes,
            "load_average": [load_before[0], load_after[0]],
            "results": [{"kind": r.kind, "label": r.label, "round": r.round,
                         "chunk_size": r.chunk_size, "records": r.records,
                         "notices": r.notices, "seconds": r.seconds, "rate": r.rate,
                         "sample": r.sample, "extra": r.extra} for r in results],
            "verdict": {str(k): v for k, v in verdict.items()},
            "notifications": notify,
        }, indent=2, default=str))
    return 1 if missed else 0


def main() -> int:
    args = parse_args()
    try:
        return run(args)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        forget_queue(args)


if __name__ == "__main__":
    sys.exit(main())
