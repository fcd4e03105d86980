#!/usr/bin/env python
"""Requests/s on GET /api/v1/users/me with HTTP Basic vs Bearer, in one gunicorn run.

    .venv/bin/python bench/basic_vs_bearer.py [--duration 5] [--rounds 3]
                                              [--connections 8] [--workers 2]

What it does, start to finish (every wait is bounded in time):

1. Creates the throw-away PostgreSQL database ``isp_bench`` if it is missing,
   runs ``manage.py migrate`` against it and (re)creates the user 01800000000
   (kind ADMIN) with a fresh random password, hashed with the project's real
   default PASSWORD_HASHERS (PBKDF2; the variable is removed from the
   environment so nothing can swap in a fast test hasher). A new password per
   run also means a new Basic cache key, so the "cold" figure really is cold.
2. Starts ``gunicorn core.wsgi:application -w N --threads 1`` on a free port of
   127.0.0.1 and waits for ``/api/v1/health``.
3. Logs in for a Bearer token; measures the first Basic request (the PBKDF2
   check, then the verdict is cached in Redis) and a second one.
4. Warms up, then alternates rounds, Bearer, Basic, Bearer, Basic, ... with
   ``--connections`` client threads (``http.client``; gunicorn's sync workers
   close the connection after every response, so each request is a new TCP
   connection for both schemes alike). Only 200s are counted; any other
   answer or a transport error aborts the run with a non-zero exit.
5. Prints requests/s, p50/p99 latency per scheme, the Basic/Bearer ratio over
   the whole run and per pair of rounds, and whether Basic >= 0.80 x Bearer.

The load stays on 127.0.0.1 and is bounded by ``--duration`` x ``--rounds``.
The client runs on the same (shared, small) machine as the server and takes
some of its CPU; it does so equally for both schemes, which is why the ratio,
not the absolute figure, is the result.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    HOST,
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
    worker_cpu,
)

PHONE = "01800000000"
ME_PATH = "/api/v1/users/me"
LOGIN_PATH = "/api/v1/users/login"
TARGET_RATIO = 0.80


# Setup ---------------------------------------------------------------------


def bench_env(args) -> dict[str, str]:
    env = dict(os.environ)
    # The real default hashers, whatever the calling shell says: PBKDF2 is the point.
    env.pop("PASSWORD_HASHERS", None)
    for name in ("CACHE_URL", "CELERY_BROKER_URL", "JWT_SIGNING_KEY", "BASIC_AUTH_CACHE_SECONDS"):
        env.pop(name, None)
    return bench_settings(env, f"{args.pg_server}/{args.db_name}", args.redis_url)


CREATE_USER = """
import sys
from accounts.models import User
from core.enums import Status, UserKind
phone, password = sys.stdin.read().split("\\n")[:2]
user = User.objects.filter(phone=phone).first() or User(phone=phone)
user.kind = UserKind.ADMIN
user.status = Status.ACTIVE
user.first_name = "Bench"
user.set_password(password)
user.save()
print("HASHER", *user.password.split("$")[:2])
"""


# HTTP ----------------------------------------------------------------------


@dataclass
class Round:
    scheme: str
    ok: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: float | None = None  # gunicorn workers' CPU seconds during the round

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def load_round(port, scheme, headers, duration, connections, master_pid=None) -> Round:
    """``connections`` threads each issuing GET /me back to back until the deadline.

    A request started before the deadline is awaited and counted; the round lasts
    until the last of them has answered."""
    result = Round(scheme)
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[str] = []
    cpu_before = worker_cpu(master_pid) if master_pid else None
    started = time.perf_counter()
    deadline = started + duration

    def client():
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        local = []
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                conn.request("GET", ME_PATH, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                t1 = time.perf_counter()
                if resp.status != 200:
                    failures.append(f"{scheme}: HTTP {resp.status} {data[:300]!r}")
                    stop.set()
                    break
                local.append(t1 - t0)
        except Exception as error:  # transport errors are failures too
            failures.append(f"{scheme}: {error!r}")
            stop.set()
        finally:
            conn.close()
            with lock:
                result.latencies.extend(local)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 30)
        if thread.is_alive():
            stop.set()
            failures.append(f"{scheme}: a client thread did not finish in time")
    result.elapsed = time.perf_counter() - started
    result.ok = len(result.latencies)
    cpu_after = worker_cpu(master_pid) if master_pid else None
    if cpu_before and cpu_after and cpu_before[0] == cpu_after[0]:  # same workers throughout
        result.cpu = cpu_after[1] - cpu_before[1]
    if failures:
        raise BenchError("non-200 answer or error under load:\n  " + "\n  ".join(failures[:5]))
    return result


# Main ----------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scheme (3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per scheme (2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--db-name", default="isp_bench", help="throw-away database (isp_bench)")
    parser.add_argument(
        "--pg-server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--drop-db", action="store_true", help="drop the database afterwards")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.duration > 120:
        parser.error("--duration must be in (0, 120]")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be in [1, 20]")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be in [1, 256]")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be in [1, 16]")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be in [0, 60]")
    return args


def run(args) -> int:
    env = bench_env(args)
    created = ensure_database(args.pg_server, args.db_name)
    print(f"database {args.db_name}: {'created' if created else 'exists'}")
    run_manage(env, "migrate", "--noinput", timeout=300)
    password = secrets.token_urlsafe(18)
    out = run_manage(env, "shell", "-c", CREATE_USER, stdin=f"{PHONE}\n{password}\n",
                     timeout=300)
    hasher = next(
        (line.split()[1:] for line in out.splitlines() if line.startswith("HASHER ")), None
    )
    if not hasher or len(hasher) < 2:
        raise BenchError(f"could not create the bench user:\n{out}")
    print(f"user {PHONE} (ADMIN): password hashed with {hasher[0]}, {hasher[1]} iterations")
    if not hasher[0].startswith("pbkdf2"):
        raise BenchError(f"expected a PBKDF2 hash, got {hasher[0]}: PASSWORD_HASHERS overridden?")

    workdir = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    log_path = workdir / "gunicorn.log"
    port = free_port()
    proc = None
    ok = False
    try:
        proc = start_gunicorn(env, port, args.workers, log_path)
        print("server:", " ".join(Path(c).name if i == 0 else c for i, c in enumerate(proc.cmd)))
        wait_healthy(proc, port, timeout=60)

        status, data, login_s = request(
            port,
            "POST",
            LOGIN_PATH,
            headers={"Content-Type": "application/json"},
            body=json.dumps({"phone": PHONE, "password": password}),
        )
        if status != 200:
            raise BenchError(f"login answered {status}: {data[:300]!r}")
        token = json.loads(data)["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        basic_value = base64.b64encode(f"{PHONE}:{password}".encode()).decode()
        basic = {"Authorization": f"Basic {basic_value}"}

        # Warm both workers' code paths with Bearer first, so the first Basic
        # request measures the password check rather than a cold process.
        if args.warmup:
            load_round(port, "bearer", bearer, args.warmup, args.connections)
        cold = []
        for _ in range(2):
            status, data, seconds = request(port, "GET", ME_PATH, headers=basic)
            if status != 200 or json.loads(data).get("phone") != PHONE:
                raise BenchError(f"Basic /me answered {status}: {data[:300]!r}")
            cold.append(seconds)
        status, data, _ = request(port, "GET", ME_PATH, headers=bearer)
        if status != 200 or json.loads(data).get("phone") != PHONE:
            raise BenchError(f"Bearer /me answered {status}: {data[:300]!r}")
        if args.warmup:
            load_round(port, "basic", basic, args.warmup, args.connections)

        load_before = os.getloadavg()
        rounds: list[Round] = []
        for number in range(args.rounds):
            for scheme, headers in (("bearer", bearer), ("basic", basic)):
                r = load_round(port, scheme, headers, args.duration, args.connections, proc.pid)
                rounds.append(r)
                cpu = f"  worker CPU {r.cpu / r.ok * 1000:5.2f} ms/req" if r.cpu and r.ok else ""
                print(
                    f"  round {number + 1} {scheme:<6} {r.ok:6d} x 200 in {r.elapsed:5.2f} s"
                    f"  {r.rps:8.1f} req/s  p50 {percentile(r.latencies, 50) * 1000:6.1f} ms{cpu}"
                )
        load_after = os.getloadavg()
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode} during the run")

        summary = {}
        for scheme in ("bearer", "basic"):
            mine = [r for r in rounds if r.scheme == scheme]
            latencies = [x for r in mine for x in r.latencies]
            summary[scheme] = {
                "requests": len(latencies),
                "seconds": sum(r.elapsed for r in mine),
                "rps": len(latencies) / sum(r.elapsed for r in mine),
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "rounds_rps": [r.rps for r in mine],
                "worker_cpu_ms_per_request": (
                    sum(r.cpu for r in mine) / len(latencies) * 1000
                    if all(r.cpu is not None for r in mine)
                    else None
                ),
            }
        ratio = summary["basic"]["rps"] / summary["bearer"]["rps"]
        pair_ratios = [b.rps / a.rps for a, b in zip(rounds[::2], rounds[1::2], strict=True)]
        met = ratio >= TARGET_RATIO

        print()
        print(
            f"GET {ME_PATH}: gunicorn -w {args.workers} --threads 1,"
            f" {args.connections} connections,"
            f" {args.rounds} x {args.duration:g} s per scheme, interleaved"
        )
        print(f"{'scheme':<8}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
        for scheme in ("bearer", "basic"):
            s = summary[scheme]
            print(
                f"{scheme:<8}{s['requests']:>10d}{s['rps']:>10.1f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}"
            )
        print(
            f"ratio Basic/Bearer: {ratio:.3f} (per pair of rounds: "
            + ", ".join(f"{x:.3f}" for x in pair_ratios)
            + f"; median {statistics.median(pair_ratios):.3f})"
        )
        print(f"target Basic >= {TARGET_RATIO:.2f} x Bearer: {'MET' if met else 'NOT MET'}")
        cpu_bearer = summary["bearer"]["worker_cpu_ms_per_request"]
        cpu_basic = summary["basic"]["worker_cpu_ms_per_request"]
        if cpu_bearer and cpu_basic:
            print(
                f"gunicorn worker CPU per request: Bearer {cpu_bearer:.2f} ms,"
                f" Basic {cpu_basic:.2f} ms (Bearer/Basic {cpu_bearer / cpu_basic:.3f};"
                " excludes PostgreSQL and Redis)"
            )
        print(
            f"cold: first Basic request {cold[0] * 1000:.0f} ms (PBKDF2 check),"
            f" second {cold[1] * 1000:.1f} ms (cached verdict); login {login_s * 1000:.0f} ms"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before"
            f" / {load_after[0]:.2f} after the measured rounds"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "summary": summary,
                        "ratio": ratio,
                        "pair_ratios": pair_ratios,
                        "target_met": met,
                        "cold_basic_ms": cold[0] * 1000,
                        "second_basic_ms": cold[1] * 1000,
                        "login_ms": login_s * 1000,
                        "cpus": os.cpu_count(),
                        "loadavg": [load_before, load_after],
                    },
                    indent=2,
                )
            )
        ok = True
        return 0 if met else 1
    finally:
        stop_gunicorn(proc)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"gunicorn log kept in {log_path}", file=sys.stderr)
            if log_path.exists():
                tail = log_path.read_text(errors="replace").splitlines()[-30:]
                print("\n".join(tail), file=sys.stderr)
        if args.drop_db:
            drop_database(args.pg_server, args.db_name)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
