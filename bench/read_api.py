#!/usr/bin/env python
"""The read API under load at scale: lists, a detail and the dashboard over gunicorn.

    .venv/bin/python bench/read_api.py --customers 100000 --months 3
        [--workers 2] [--duration 10] [--warmup 2] [--connections 8]
        [--tiny-customers 100] [--explain-ms 5] [--json FILE]

What it does, start to finish (every wait is bounded in time):

1. Creates the PostgreSQL database ``isp_bench_read`` if it is missing and migrates
   it. When it does not hold exactly ``--customers`` customers and one successful
   bill run for each of the ``--months`` months up to BILLED_UNTIL (a fixed month:
   the data, hence the figures, do not depend on the day of the run), it is dropped,
   recreated and seeded with ``manage.py seed_demo --until`` (a rerun at the same
   size skips this): records made by real bill runs, each chunk's records sharing one
   ``created_at`` as in production, and a share of them paid afterwards. What the
   runs hand to the queue goes to an in-process broker and is dropped.
   ``VACUUM ANALYZE`` then brings the tables to a steady state (statistics,
   visibility map), as autovacuum would on a live server. The same is done for a
   tiny database, ``isp_bench_read_tiny`` (``--tiny-customers``).
2. Counts the SQL queries of one request to each endpoint in-process (Django's test
   ``Client`` and ``CaptureQueriesContext``, a second request after a warm-up one)
   against both databases, with each query's time at scale, and ``EXPLAIN
   (ANALYZE, BUFFERS)`` of every query slower than ``--explain-ms``.
3. Starts ``gunicorn core.wsgi:application -w N --threads 1`` (sync workers) on a
   free port of 127.0.0.1, gives the ADMIN user 01900000000 a fresh password, logs
   in (``POST /api/v1/users/login``) for a Bearer token.
4. For ``GET /api/v1/users/me`` first (the floor: auth and one query, no target),
   then each endpoint: ``--warmup`` seconds of load, then ``--duration`` seconds with
   ``--connections`` client threads, each on its own ``http.client`` connection
   (kept alive by the client; gunicorn's sync workers close it after every
   response, so http.client reconnects: one TCP connect per request on loopback).
   A non-200 answer or a transport error is counted as an error, and any error
   makes the exit status 1.
5. Prints per endpoint requests/s, their share of the floor's requests/s in the same
   run (the baseline: steadier across machines than req/s), p50 and p99 latency, the
   gunicorn workers' CPU time per request (from /proc) and errors, against the
   target p99 < 50 ms, and stops gunicorn in a ``finally`` block.

Environment of the server and of every manage.py call: DATABASE_URL=postgres://
postgres@127.0.0.1:5432/isp_bench_read, REDIS_URL=redis://127.0.0.1:6379/13,
SECRET_KEY=bench, DEBUG=false, the project's real password hashers. The client
runs on the same machine as the server and PostgreSQL and takes some of its CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    HOST,
    ROOT,
    BenchError,
    bench_settings,
    drop_database,
    ensure_database,
    free_port,
    percentile,
    pg,
    request,
    run_manage,
    start_gunicorn,
    stop_gunicorn,
    wait_healthy,
    worker_cpu,
)

PHONE = "01900000000"  # seed_demo's ADMIN
LOGIN_PATH = "/api/v1/users/login"
TARGET_P99_MS = 50.0
# What a full page adds to a list: the tables' latest change (the cached count's key)
# and, on a cache miss, COUNT(*).
COUNT_QUERIES = 2
# The floor: the cheapest authenticated read (one query), not one of the targets.
BASELINE = {"me": "/api/v1/users/me"}
# The last month the seed bills: fixed, so that no figure depends on the day of the run.
BILLED_UNTIL = (2026, 3)
ENDPOINTS = {
    "customers": "/api/v1/customers?page_size=50",
    "payments": "/api/v1/payments?page_size=50",
    "pay_month": "/api/v1/payments?page_size=50&billing_year=2026&month=MARCH",
    "pay_amount": "/api/v1/payments?page_size=50&ordering=-amount",
    "users": "/api/v1/users?page_size=50",
    "customer": "/api/v1/customers/{uid}",
    "dashboard": "/api/v1/dashboard",
    # A first name of seed_demo's (about 1 customer in 24), and a customer's whole phone
    # number (each request another customer's, as staff look customers up).
    "search_name": "/api/v1/customers?page_size=50&search=Tahmina",
    "search_phone": "/api/v1/customers?page_size=50&search={phone}",
}
TABLES = ("billing_package", "billing_customer", "billing_payment", "billing_collection",
          "billing_notification", "accounts_user")


# Databases -------------------------------------------------------------------


def server_env(args, db_name: str) -> dict[str, str]:
    env = dict(os.environ)
    # The project's real settings, whatever the calling shell says.
    for name in ("PASSWORD_HASHERS", "CACHE_URL", "CELERY_BROKER_URL", "JWT_SIGNING_KEY",
                 "CONN_MAX_AGE", "DJANGO_SETTINGS_MODULE", "BUSINESS_TIME_ZONE"):
        env.pop(name, None)
    return bench_settings(env, f"{args.pg_server}/{db_name}", args.redis_url)


def billed_months(count: int) -> list[tuple[int, int]]:
    """The ``count`` months up to BILLED_UNTIL, oldest first (year, month number)."""
    year, month = BILLED_UNTIL
    months = []
    for _ in range(count):
        months.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months[::-1]


def seeded_state(url: str) -> tuple[int, list[tuple[int, int]], bool]:
    """(customers, the (year, month) of each successful bill run, admin exists)."""
    import calendar

    numbers = {calendar.month_name[n].upper(): n for n in range(1, 13)}
    with pg(url) as conn:
        customers = conn.execute("SELECT count(*) FROM billing_customer").fetchone()[0]
        runs = conn.execute(
            "SELECT billing_year, billing_month FROM billing_billrun WHERE state = 'SUCCESS' "
            "ORDER BY billing_year, billing_month"
        ).fetchall()
        admin = conn.execute(
            "SELECT 1 FROM accounts_user WHERE phone = %s AND kind = 'ADMIN'", (PHONE,)
        ).fetchone()
    return customers, sorted((year, numbers[month]) for year, month in runs), admin is not None


def prepare_database(args, db_name: str, customers: int) -> dict[str, str]:
    """Migrated and seeded at ``customers`` x ``--months``; the env to reach it."""
    env = server_env(args, db_name)
    url = f"{args.pg_server}/{db_name}"
    created = ensure_database(args.pg_server, db_name)
    run_manage(env, "migrate", "--noinput")
    state = seeded_state(url)
    wanted = (customers, billed_months(args.months), True)
    if state == wanted:
        print(f"database {db_name}: already seeded ({customers} customers x {args.months} months)")
    else:
        if not created and state[0]:
            print(f"database {db_name}: holds {state[0]} customers / {len(state[1])} bill "
                  "runs, not the data asked for: dropping it")
            drop_database(args.pg_server, db_name)
            ensure_database(args.pg_server, db_name)
            run_manage(env, "migrate", "--noinput")
        print(f"database {db_name}: seeding {customers} customers x {args.months} months")
        started = time.monotonic()
        until = "{}-{:02d}".format(*BILLED_UNTIL)
        seed_env = {**env, "CELERY_BROKER_URL": "memory://", "CELERY_TASK_ALWAYS_EAGER": "false"}
        out = run_manage(
            seed_env, "seed_demo", "--customers", str(customers), "--months", str(args.months),
            "--until", until, "--seed", "1",
            *([] if sys.stderr.isatty() else ["--no-progress"]),
            timeout=3600, capture=False,
        )
        print(out, end="")
        print(f"  seed_demo took {time.monotonic() - started:.1f} s (wall, incl. start-up)")
    started = time.monotonic()
    with pg(url) as conn:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(TABLES)}")
    print(f"  VACUUM ANALYZE: {time.monotonic() - started:.1f} s")
    return env


SET_PASSWORD = """
import sys
from accounts.models import User
user = User.objects.get(phone=sys.stdin.readline().strip())
user.set_password(sys.stdin.readline().strip())
user.save(update_fields=["password"])
"""


# Query counts (run in a child process per database) ----------------------------


def count_queries(explain_ms: float) -> dict:
    """The SQL of one request to each endpoint, as Django's test Client sends it."""
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from accounts.tokens import token_issue
    from billing.models import Customer
    from core.enums import Status

    admin = User.objects.get(phone=PHONE)
    token = token_issue(user=admin, token_type="access").token
    client = Client(headers={"Authorization": f"Bearer {token}"})
    samples = list(Customer.objects.exclude(status=Status.REMOVED).values("uid", "phone")[:50])
    result = {}
    for name, path in {**BASELINE, **ENDPOINTS}.items():
        first_path = path.format(**samples[0])
        with CaptureQueriesContext(connection) as first:
            response = client.get(first_path)
        if response.status_code != 200:
            raise BenchError(f"{first_path}: {response.status_code} {response.content[:300]!r}")
        measured_path = path.format(**random.choice(samples))
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(measured_path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise BenchError(f"{measured_path}: {response.status_code}")
        queries = []
        for query in captured.captured_queries:
            entry = {"sql": query["sql"], "ms": float(query["time"]) * 1000}
            if (
                connection.vendor == "postgresql"
                and entry["ms"] >= explain_ms
                and query["sql"].lstrip().upper().startswith("SELECT")
            ):
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                    entry["plan"] = "\n".join(row[0] for row in cursor.fetchall())
            queries.append(entry)
        result[name] = {
            "path": measured_path,
            "queries": len(captured.captured_queries),
            "first_request_queries": len(first.captured_queries),
            "in_process_ms": elapsed * 1000,
            "bytes": len(response.content),
            "detail": queries,
        }
    return result


def measure_queries(env, explain_ms: float) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--_count-queries", "--explain-ms", str(explain_ms)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        raise BenchError(f"counting queries failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Server and load ---------------------------------------------------------------


@dataclass
class Result:
    name: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: float | None = None  # gunicorn workers' CPU seconds during the run

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.cpu / len(self.latencies) * 1000 if self.cpu and self.latencies else None

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def load(port, name, path, headers, duration, connections, samples, master_pid) -> Result:
    """``path`` asked by ``connections`` clients for ``duration`` s; its ``{uid}`` and
    ``{phone}`` are those of a customer drawn from ``samples`` for each request."""
    """``connections`` threads, each sending requests back to back until the deadline;
    a request started before it is awaited and counted. The workers' CPU time is read
    before and after: less disturbed by other load on a shared machine than req/s."""
    result = Result(name)
    cpu_before = worker_cpu(master_pid)
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + duration

    def client(seed: int):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        local, errors = [], []
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                target = path.format(**rng.choice(samples))
                try:
                    conn.request("GET", target, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as error:
                    errors.append(f"{target}: {error!r}")
                    conn.close()
                    continue
                t1 = time.perf_counter()
                if resp.status == 200:
                    local.append(t1 - t0)
                else:
                    errors.append(f"{target}: HTTP {resp.status} {data[:200]!r}")
        finally:
            conn.close()
            with lock:
                result.latencies.extend(local)
                result.errors.extend(errors)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.perf_counter()) + 60)
        if thread.is_alive():
            result.errors.append("a client thread did not finish within 60 s of the deadline")
    result.elapsed = time.perf_counter() - started
    cpu_after = worker_cpu(master_pid)
    if cpu_before and cpu_after and cpu_before[0] == cpu_after[0]:  # same workers throughout
        result.cpu = cpu_after[1] - cpu_before[1]
    return result


# Main --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--tiny-customers", type=int, default=100,
                        help="customers of the tiny database the query counts are compared with")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--explain-ms", type=float, default=5.0,
                        help="EXPLAIN ANALYZE queries at least this slow in-process (5)")
    parser.add_argument("--db-name", default="isp_bench_read")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--_count-queries", dest="count_queries", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 2_000_000 or not 1 <= args.tiny_customers <= 100_000:
        parser.error("--customers must be in [1, 2000000], --tiny-customers in [1, 100000]")
    if not 1 <= args.months <= 24:
        parser.error("--months must be in [1, 24]")
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120], --warmup in [0, 60]")
    if not 1 <= args.connections <= 64 or not 1 <= args.workers <= 16:
        parser.error("--connections must be in [1, 64], --workers in [1, 16]")
    return args


def print_queries(label: str, counts: dict) -> None:
    print(f"\nSQL per request, {label}:")
    for name, info in counts.items():
        times = ", ".join(f"{q['ms']:.1f}" for q in info["detail"])
        first = info["first_request_queries"]
        print(f"  {name:<10} {info['queries']} queries ({times} ms); in-process "
              f"{info['in_process_ms']:.1f} ms, {info['bytes']} bytes"
              + ("" if first == info["queries"] else f"; first request: {first} queries"))


def run(args) -> int:
    load_before = os.getloadavg()
    env = prepare_database(args, args.db_name, args.customers)
    tiny_env = prepare_database(args, f"{args.db_name}_tiny", args.tiny_customers)

    big = measure_queries(env, args.explain_ms)
    tiny = measure_queries(tiny_env, 1e9)
    print_queries(f"{args.customers} customers", big)
    # A page that is not full gives its count without counting (core.pagination), so a
    # list whose tiny twin fits one page may ask the count's two queries fewer; anything
    # more is a query per row (N+1).
    same = all(big[n]["queries"] <= tiny[n]["queries"] + COUNT_QUERIES for n in ENDPOINTS)
    tiny_counts = ", ".join(f"{n} {tiny[n]['queries']}" for n in ENDPOINTS)
    print(f"  the same counts with {args.tiny_customers} customers, but for a count: "
          f"{'yes' if same else 'NO'} ({tiny_counts})")
    for name, info in big.items():
        for query in info["detail"]:
            if "plan" in query:
                print(f"\nEXPLAIN ANALYZE, {name}, {query['ms']:.1f} ms in-process:\n"
                      f"  {query['sql'][:400]}\n" + "\n".join(
                          "    " + line for line in query["plan"].splitlines()))

    with pg(f"{args.pg_server}/{args.db_name}") as conn:
        samples = [{"uid": str(uid), "phone": phone} for uid, phone in conn.execute(
            "SELECT uid, phone FROM billing_customer WHERE status <> 'REMOVED' "
            "ORDER BY random() LIMIT 5000").fetchall()]
    password = secrets.token_urlsafe(18)
    run_manage(env, "shell", "-c", SET_PASSWORD, stdin=f"{PHONE}\n{password}\n")

    workdir = Path(tempfile.mkdtemp(prefix="bench-read-"))
    log_path = workdir / "gunicorn.log"
    port = free_port()
    proc = None
    results: list[Result] = []
    try:
        proc = start_gunicorn(env, port, args.workers, log_path)
        print("\nserver:", " ".join(Path(c).name if i == 0 else c for i, c in enumerate(proc.cmd)))
        wait_healthy(proc, port, timeout=60)
        status, data, _ = request(
            port, "POST", LOGIN_PATH, headers={"Content-Type": "application/json"},
            body=json.dumps({"phone": PHONE, "password": password}),
        )
        if status != 200:
            raise BenchError(f"login answered {status}: {data[:300]!r}")
        headers = {"Authorization": f"Bearer {json.loads(data)['access_token']}"}

        print(f"load: {args.connections} connections, {args.warmup:g} s warm-up + "
              f"{args.duration:g} s per endpoint")
        for name, path in {**BASELINE, **ENDPOINTS}.items():
            if args.warmup:
                warm = load(port, name, path, headers, args.warmup, args.connections, samples,
                            proc.pid)
                if warm.errors:
                    print(f"  {name}: {len(warm.errors)} errors during warm-up, e.g. "
                          f"{warm.errors[0]}")
            r = load(port, name, path, headers, args.duration, args.connections, samples, proc.pid)
            results.append(r)
            print(f"  {name:<10} {len(r.latencies):6d} x 200 in {r.elapsed:5.2f} s  "
                  f"{r.rps:7.1f} req/s  p50 {percentile(r.latencies, 50) * 1000:7.1f} ms  "
                  f"p99 {percentile(r.latencies, 99) * 1000:7.1f} ms  errors {len(r.errors)}")
            for error in r.errors[:3]:
                print(f"      {error}")
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode} during the run")
    finally:
        stop_gunicorn(proc)
    load_after = os.getloadavg()

    # The floor's throughput is the baseline measured in the same run: each endpoint's
    # share of it is steadier across machines and noise than its req/s.
    floor_rps = results[0].rps if results and results[0].name in BASELINE else None
    print(f"\n{'endpoint':<10} {'req/s':>8} {'/floor':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU ms':>7} {'errors':>7} {'SQL':>4} {'SQL tiny':>8}  p99<{TARGET_P99_MS:g}ms")
    missed = []
    for r in results:
        p99 = percentile(r.latencies, 99) * 1000
        ok = p99 < TARGET_P99_MS
        if not ok and r.name in ENDPOINTS:
            missed.append(r.name)
        share = f"{r.rps / floor_rps:6.2f}" if floor_rps else f"{'-':>6}"
        cpu = f"{r.cpu_ms_per_request:7.2f}" if r.cpu_ms_per_request else f"{'-':>7}"
        print(f"{r.name:<10} {r.rps:8.1f} {share} {percentile(r.latencies, 50) * 1000:8.1f} "
              f"{p99:8.1f} {cpu} {len(r.errors):7d} {big[r.name]['queries']:4d} "
              f"{tiny[r.name]['queries']:8d}  "
              f"{'yes' if ok else 'NO'}{'' if r.name in ENDPOINTS else ' (floor, no target)'}")
    print("/floor: req/s as a share of the floor's in this run; CPU ms: the gunicorn "
          "workers' CPU time per request")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} CPUs)")
    errors = sum(len(r.errors) for r in results)

    if args.json:
        args.json.write_text(json.dumps({
            "customers": args.customers,
            "months": args.months,
            "workers": args.workers,
            "connections": args.connections,
            "duration": args.duration,
            "load_average": [load_before[0], load_after[0]],
            "endpoints": {
                r.name: {
                    "requests": len(r.latencies),
                    "rps": r.rps,
                    "p50_ms": percentile(r.latencies, 50) * 1000,
                    "p99_ms": percentile(r.latencies, 99) * 1000,
                    "mean_ms": statistics.fmean(r.latencies) * 1000 if r.latencies else None,
                    "share_of_floor": r.rps / floor_rps if floor_rps else None,
                    "worker_cpu_ms_per_request": r.cpu_ms_per_request,
                    "errors": len(r.errors),
                    "queries": big[r.name]["queries"],
                    "queries_tiny": tiny[r.name]["queries"],
                    "query_ms": [q["ms"] for q in big[r.name]["detail"]],
                }
                for r in results
            },
        }, indent=2))
    if errors:
        print(f"FAILED: {errors} errors")
        return 1
    if not same:
        print("FAILED: the query counts depend on the size of the data")
        return 1
    if missed:
        print(f"target p99 < {TARGET_P99_MS:g} ms missed by: {', '.join(missed)}")
    return 0


def main() -> int:
    args = parse_args()
    if args.count_queries:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(count_queries(args.explain_ms)))
        return 0
    try:
        return run(args)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
