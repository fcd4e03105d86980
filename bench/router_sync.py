#!/usr/bin/env python
"""A full sync of one router (20,000 secrets, 1% drift) against fake routers that take
20 ms per call, beside its baseline: the same repairs asked one customer at a time.

    .venv/bin/python bench/router_sync.py [--routers 5] [--secrets 20000] [--drift 0.01]
        [--delay 0.02] [--calls-per-second 20] [--sample 100] [--json FILE]

What it does, start to finish (every wait is bounded in time):

1. Creates the PostgreSQL database ``isp_bench_routers`` (dropped first if it is there)
   and migrates it; starts ``--routers`` fake RouterOS REST servers in this process,
   each answering every call after ``--delay`` seconds, each with ``--secrets`` PPPoE
   secrets of the package's profile; a Router record per fake (``calls_per_second``
   from ``--calls-per-second``, the default of a new router) and a customer per secret.
2. Drift on the first router, as production makes it (a payment's or a suspension's
   change that never reached the router, a package changed by hand on the router):
   ``--drift`` of its customers differ: half are suspended in billing but enabled on
   the router, with a live session; half carry another profile on the router.
3. Measured: a sync run of the first router in this process (tasks in-process), from
   its request to SUCCESS, and the router calls it made (the fake's request log), with
   the run's result (checked, changed, failed, drift before and after).
4. Baseline: the single-change path asked for ``--sample`` customers of the second
   router one by one (a ConnectionChange each, carried out at once: its filtered reads
   of the router, then nothing to change), timed, and scaled to ``--secrets``: what a
   per-customer check of a whole router would take. The ratio is sync / baseline.
5. Prints the figures and whether the target holds (a full sync under 60 s); exit 0
   when it does, 1 when not, 2 when the run failed.

Uses Redis database 14 for the per-router call limits. The fakes, PostgreSQL and this
process share the machine's CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

from common import ROOT, BenchError, bench_settings, drop_database, ensure_database, run_manage

DB_NAME = "isp_bench_routers"
TARGET_SECONDS = 60.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routers", type=int, default=5)
    parser.add_argument("--secrets", type=int, default=20_000)
    parser.add_argument("--drift", type=float, default=0.01)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--calls-per-second", type=int, default=20)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--pg-server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--json", dest="json_path")
    return parser.parse_args(argv)


def setup(args) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MIKROTIK_"))}
    bench_settings(env, f"{args.pg_server}/{DB_NAME}", args.redis_url,
                   CELERY_TASK_ALWAYS_EAGER="true", ROUTER_SYNC_BATCH_SECONDS="20")
    drop_database(args.pg_server, DB_NAME)
    ensure_database(args.pg_server, DB_NAME)
    run_manage(env, "migrate", "--noinput")
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env


def populate(args):
    from django.db import connection

    from billing.models import Customer, Package, Router
    from tests.network.fake_routeros import FakeRouterOS

    package = Package.objects.create(name="Home 20", speed_mbps=20, price="500.00",
                                     router_profile="20M")
    fakes, routers = [], []
    for number in range(args.routers):
        fake = FakeRouterOS().start()
        names = fake.bulk_secrets(args.secrets, prefix=f"r{number}-u", profile="20M")
        router = Router.objects.create(
            name=f"bench-{number}", host="127.0.0.1", port=fake.port, use_tls=False,
            username=fake.user, password=fake.password,
            calls_per_second=args.calls_per_second, timeout_seconds=5,
        )
        Customer.objects.bulk_create(
            [Customer(name=name, username=name, password="pppoe-pass", package=package,
                      connection_type="PPPoE", router=router, uid=uuid.uuid4())
             for name in names],
            batch_size=5000,
        )
        fakes.append(fake)
        routers.append(router)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_customer")
    return fakes, routers


def make_drift(args, fake, router) -> int:
    from billing.models import Customer

    drifted = int(args.secrets * args.drift)
    names = [f"r0-u{n}" for n in range(0, args.secrets, max(args.secrets // drifted, 1))]
    names = names[:drifted]
    suspended, reprofiled = names[: drifted // 2], names[drifted // 2:]
    Customer.objects.filter(router=router, username__in=suspended).update(is_active=False)
    for name in suspended:
        fake.add_session(name)
    by_name = {row["name"]: ident for ident, row in fake.secrets.items()}
    for name in reprofiled:
        fake.secrets[by_name[name]]["profile"] = "5M"
    return len(names)


def measure_sync(fake, router) -> dict:
    from billing.models import RouterRun
    from billing.router_runs import router_run_request

    before = len(fake.calls())
    started = time.monotonic()
    run = router_run_request(router=router, kind=RouterRun.Kind.SYNC, requested_by=None)
    run.refresh_from_db()
    took = time.monotonic() - started
    if run.state != RouterRun.State.SUCCESS:
        raise BenchError(f"the sync ended {run.state}: {run.error}")
    return {"seconds": took, "calls": len(fake.calls()) - before, "result": run.result}


def measure_one_by_one(args, fake, router) -> dict:
    from billing.connections import connection_change_apply_now, connection_change_request
    from billing.models import Customer

    sample = list(Customer.objects.filter(router=router).order_by("pk")[: args.sample])
    before = len(fake.calls())
    started = time.monotonic()
    for customer in sample:
        change = connection_change_request(customer=customer, enable=True, reason="SYNC",
                                           requested_by=None, send=False)
        if not connection_change_apply_now(change_id=change.pk):
            raise BenchError(f"customer {customer.pk} was not confirmed")
    took = time.monotonic() - started
    calls = len(fake.calls()) - before
    scale = args.secrets / len(sample)
    return {"sample": len(sample), "seconds": took, "calls": calls,
            "scaled_seconds": took * scale, "scaled_calls": round(calls * scale)}


def run(args) -> int:
    setup(args)
    started = time.monotonic()
    fakes, routers = populate(args)
    print(f"{args.routers} fake routers x {args.secrets:,} secrets, {args.delay * 1000:.0f} ms "
          f"per call, {args.calls_per_second} calls/s per router: set up in "
          f"{time.monotonic() - started:.1f} s")
    try:
        drifted = make_drift(args, fakes[0], routers[0])
        for fake in fakes:
            fake.delay = args.delay
        sync = measure_sync(fakes[0], routers[0])
        baseline = measure_one_by_one(args, fakes[1], routers[1])
    finally:
        for fake in fakes:
            fake.stop()
    result = sync["result"]
    ratio = sync["seconds"] / baseline["scaled_seconds"]
    print(f"drift made on router 1: {drifted} customers ({args.drift:.1%})")
    print(f"sync of router 1: {sync['seconds']:.1f} s, {sync['calls']} router calls "
          f"({sync['calls'] / args.secrets:.3f} per customer); checked {result['checked']}, "
          f"changed {result['changed']}, failed {result['failed']}, drift "
          f"{result['drift_before']} -> {result['drift_after']}")
    print(f"baseline, one customer at a time: {baseline['sample']} customers in "
          f"{baseline['seconds']:.1f} s, {baseline['calls']} calls; scaled to "
          f"{args.secrets:,}: {baseline['scaled_seconds']:.0f} s, {baseline['scaled_calls']} "
          f"calls")
    print(f"ratio sync / one-by-one: {ratio:.4f}")
    met = sync["seconds"] < TARGET_SECONDS and result["drift_after"] == 0
    print(f"target full sync < {TARGET_SECONDS:.0f} s with the drift repaired: "
          f"{'met' if met else 'NOT MET'}")
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump({"args": vars(args), "drifted": drifted, "sync": sync,
                       "baseline": baseline, "ratio": ratio, "met": met}, out, indent=2)
    return 0 if met else 1


def main() -> int:
    try:
        return run(parse_args())
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
