#!/usr/bin/env python
"""An unrelated client's latency while one address floods POST /users/login with wrong passwords.

    .venv/bin/python bench/login_flood.py [--duration 10] [--rounds 2] [--flooders 8]
                                          [--workers 2] [--unthrottled]

What it does, start to finish (every wait is bounded in time):

1. Creates the throw-away PostgreSQL database ``isp_bench`` if it is missing,
   migrates it and gives the user 01800000000 a fresh random password hashed with
   the real default PASSWORD_HASHERS (PBKDF2), as bench/basic_vs_bearer.py does.
2. Starts ``gunicorn core.wsgi:application -w N --threads 1`` with the default
   throttle rates (a cache key prefix of its own, so no earlier run's counters
   count) and logs in once for a Bearer token.
3. Alternates rounds: "alone" (one client thread, GET /api/v1/users/me with
   Bearer, back to back) and "flood" (the same client while ``--flooders``
   threads in another process send wrong-password logins, each for a new
   unknown phone, from the same address, back to back).
4. Prints p50/p99 of the client per kind of round, the p99 ratio flood/alone
   (target < 2), and what the flood got (401: a password hash was paid; 429:
   refused by the throttle before any hash).

``--unthrottled`` runs the same rounds on a second server whose rates are so high
that nothing is throttled: the situation before throttling, for comparison.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from common import (
    BenchError,
    bench_settings,
    drop_database,
    ensure_database,
    free_port,
    percentile,
    request,
    run_manage,
    start_gunicorn,
    stop_gunicorn,
    wait_healthy,
)

PHONE = "01800000000"
ME_PATH = "/api/v1/users/me"
LOGIN_PATH = "/api/v1/users/login"
TARGET_P99_RATIO = 2.0
NO_LIMIT = "1000000/min"

CREATE_USER = """
import sys
from accounts.models import User
from core.enums import Status, UserKind
phone, password = sys.stdin.read().split("\\n")[:2]
user = User.objects.filter(phone=phone).first() or User(phone=phone)
user.kind = UserKind.ADMIN
user.status = Status.ACTIVE
user.set_password(password)
user.save()
print("HASHER", *user.password.split("$")[:2])
"""


def bench_env(args, throttled: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PASSWORD_HASHERS", None)  # PBKDF2, whatever the calling shell says
    for name in list(env):
        if name.startswith("THROTTLE_") or name in ("CACHE_URL", "JWT_SIGNING_KEY"):
            env.pop(name)
    extra = {"CACHE_KEY_PREFIX": f"bench-flood-{secrets.token_hex(4)}"}
    if not throttled:
        extra.update(
            THROTTLE_CREDENTIALS_PER_LOGIN=NO_LIMIT, THROTTLE_CREDENTIALS_PER_ADDRESS=NO_LIMIT,
            THROTTLE_LOGIN=NO_LIMIT,
        )
    return bench_settings(env, f"{args.pg_server}/{args.db_name}", args.redis_url, **extra)


def flood(port: int, threads: int, seconds: float, results) -> None:
    """In its own process: ``threads`` threads of wrong-password logins until the deadline."""
    deadline = time.monotonic() + seconds
    counts: Counter = Counter()
    lock = threading.Lock()

    def one():
        local: Counter = Counter()
        while time.monotonic() < deadline:
            phone = "0199" + "".join(secrets.choice("0123456789") for _ in range(7))
            body = json.dumps({"phone": phone, "password": "wrong-password"})
            try:
                status, _, _ = request(port, "POST", LOGIN_PATH, body=body,
                                       headers={"Content-Type": "application/json"}, timeout=30)
                local[status] += 1
            except OSError as error:
                local[type(error).__name__] += 1
        with lock:
            counts.update(local)

    workers = [threading.Thread(target=one, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 40)
    results.put(dict(counts))


def client_round(port: int, headers: dict, seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, data, took = request(port, "GET", ME_PATH, headers=headers)
        if status != 200:
            raise BenchError(f"GET /me answered {status}: {data[:200]!r}")
        latencies.append(took)
    return latencies


def measure(args, env, label: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    log_path = workdir / "gunicorn.log"
    port = free_port()
    proc = None
    try:
        proc = start_gunicorn(env, port, args.workers, log_path)
        wait_healthy(proc, port, timeout=60)
        status, data, _ = request(
            port, "POST", LOGIN_PATH, headers={"Content-Type": "application/json"},
            body=json.dumps({"phone": PHONE, "password": args.password}),
        )
        if status != 200:
            raise BenchError(f"login answered {status}: {data[:300]!r}")
        headers = {"Authorization": f"Bearer {json.loads(data)['access_token']}"}
        client_round(port, headers, 2.0)  # warm-up
        alone, flooded, flood_counts = [], [], Counter()
        context = multiprocessing.get_context("fork")
        for number in range(args.rounds):
            alone_round = client_round(port, headers, args.duration)
            alone.extend(alone_round)
            results = context.Queue()
            flooder = context.Process(
                target=flood, args=(port, args.flooders, args.duration + 1.0, results)
            )
            flooder.start()
            time.sleep(0.5)  # let the flood reach the server first
            flood_round = client_round(port, headers, args.duration)
            flooded.extend(flood_round)
            answers = results.get(timeout=args.duration + 60)
            flood_counts.update(answers)
            flooder.join(timeout=30)
            print(f"  {label} round {number + 1}: alone p50/p99"
                  f" {percentile(alone_round, 50) * 1000:.1f}/"
                  f"{percentile(alone_round, 99) * 1000:.1f} ms, flood p50/p99"
                  f" {percentile(flood_round, 50) * 1000:.1f}/"
                  f"{percentile(flood_round, 99) * 1000:.1f} ms, flood answers {answers}")
        return {
            "alone": {"requests": len(alone), "p50_ms": percentile(alone, 50) * 1000,
                      "p99_ms": percentile(alone, 99) * 1000},
            "flood": {"requests": len(flooded), "p50_ms": percentile(flooded, 50) * 1000,
                      "p99_ms": percentile(flooded, 99) * 1000},
            "flood_answers": {str(k): v for k, v in flood_counts.items()},
        }
    except BenchError:
        if log_path.exists():
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]),
                  file=sys.stderr)
        raise
    finally:
        stop_gunicorn(proc)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round (10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind (2)")
    parser.add_argument("--flooders", type=int, default=8, help="flood threads (8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--unthrottled", action="store_true",
                        help="also measure a server that throttles nothing")
    parser.add_argument("--db-name", default="isp_bench")
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--drop-db", action="store_true", help="drop the database afterwards")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10:
        parser.error("--duration must be in (0, 120] and --rounds in [1, 10]")
    if not 1 <= args.flooders <= 64 or not 1 <= args.workers <= 16:
        parser.error("--flooders must be in [1, 64] and --workers in [1, 16]")
    return args


def run(args) -> int:
    env = bench_env(args, throttled=True)
    created = ensure_database(args.pg_server, args.db_name)
    print(f"database {args.db_name}: {'created' if created else 'exists'}")
    run_manage(env, "migrate", "--noinput", timeout=300)
    args.password = secrets.token_urlsafe(18)
    out = run_manage(env, "shell", "-c", CREATE_USER, stdin=f"{PHONE}\n{args.password}\n")
    if "HASHER pbkdf2" not in out:
        raise BenchError(f"expected a PBKDF2 hash for the bench user:\n{out}")
    try:
        figures = {"throttled": measure(args, env, "throttled")}
        if args.unthrottled:
            figures["unthrottled"] = measure(args, bench_env(args, throttled=False),
                                             "unthrottled")
    finally:
        if args.drop_db:
            drop_database(args.pg_server, args.db_name)
    print()
    print(f"GET {ME_PATH} (Bearer, 1 client) beside {args.flooders} threads of wrong-password"
          f" logins from the same address; gunicorn -w {args.workers} --threads 1,"
          f" {args.rounds} x {args.duration:g} s per kind of round, interleaved")
    print(f"{'server':<13}{'round':<7}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for label, result in figures.items():
        for kind in ("alone", "flood"):
            s = result[kind]
            print(f"{label:<13}{kind:<7}{s['requests']:>9d}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}")
        result["p99_ratio"] = result["flood"]["p99_ms"] / result["alone"]["p99_ms"]
        result["p50_ratio"] = result["flood"]["p50_ms"] / result["alone"]["p50_ms"]
        print(f"{label:<13}p99 flood/alone {result['p99_ratio']:.2f},"
              f" p50 {result['p50_ratio']:.2f}; flood answers {result['flood_answers']}")
    met = figures["throttled"]["p99_ratio"] < TARGET_P99_RATIO
    verdict = "MET" if met else "NOT MET"
    print(f"target p99 flood/alone < {TARGET_P99_RATIO:g} (throttled): {verdict}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()
                                                  if k != "password"},
                                         "figures": figures, "target_met": met}, indent=2))
    return 0 if met else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
