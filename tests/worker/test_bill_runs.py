"""Bill runs on a real worker (PostgreSQL, Redis, a Celery worker subprocess): a whole run,
two runs at once, and a worker killed with SIGKILL half way."""

import re
import threading
import time
from collections import Counter
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from billing import bills
from billing.models import BillRun, BillRunChunk, Customer, Notification, Payment, ReconciliationRun
from billing.reconciliation import reconciliation_start
from core.enums import UserKind
from core.queue import publish
from tests.conftest import ApiClient
from tests.private_postgres import private_postgres  # noqa: F401 (the fixture)
from tests.worker.conftest import (
    CHUNK_SIZE,
    Seeded,
    poll,
    seed_customers,
    wait_task,
    wait_until,
)
from tests.worker.conftest import test_database_url as database_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MONTH, YEAR = "MARCH", 2030
BILLABLE = 1500


def generate(api: ApiClient) -> str:
    response = api.post(f"/customers/bills/generate?month={MONTH}&year={YEAR}")
    assert response.status_code == 202, response.content
    return response.json()["task_id"]


def chunks_done_by(worker) -> int:
    return len(re.findall(r"Task bills\.run_chunk\[[^\]]+\] succeeded", worker.output()))


def assert_one_record_per_billable_customer(seeded: Seeded) -> None:
    records = Payment.objects.filter(billing_year=YEAR, billing_month=MONTH)
    per_customer = Counter(records.values_list("customer_id", flat=True))
    duplicated = {pk: n for pk, n in per_customer.items() if n > 1}
    assert not duplicated, f"customers with more than one record: {list(duplicated)[:20]}"
    missing = set(seeded.billable) - set(per_customer)
    assert not missing, f"{len(missing)} billable customers without a record"
    extra = set(per_customer) - set(seeded.billable)
    assert not extra, f"{len(extra)} records for customers that are not billable"
    wrong = [
        (customer_id, bill, amount, paid)
        for customer_id, bill, amount, paid in records.values_list(
            "customer_id", "bill_amount", "amount", "paid"
        )
        if (bill, amount, paid) != (seeded.billable[customer_id], Decimal("0.00"), False)
    ]
    assert not wrong, f"records not as a bill run makes them: {wrong[:10]}"


def assert_one_bill_notice_per_channel(seeded: Seeded) -> None:
    notices = Notification.objects.filter(event=Notification.Event.BILL_ISSUED)
    per_key = Counter(notices.values_list("customer_id", "channel"))
    expected = {(pk, "SMS") for pk in seeded.phones} | {(pk, "EMAIL") for pk in seeded.emails}
    assert set(per_key) == expected
    assert set(per_key.values()) == {1}


def test_a_whole_bill_run_on_a_real_worker(client_as, start_worker):
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(BILLABLE)
    worker = start_worker()

    task_id = generate(api)
    body = wait_task(api, task_id, watch=[worker])

    assert body["status"] == "SUCCESS", body
    run = BillRun.objects.get(task_id=task_id)
    assert run.enqueued is True
    assert run.state == BillRun.State.SUCCESS
    assert (run.billable_count, run.created_count, run.skipped_count, run.missing_count) == (
        BILLABLE, BILLABLE, 0, 0
    )
    assert run.chunks_total == run.chunks_done > BILLABLE // CHUNK_SIZE
    assert body["progress"] == {
        "chunks_done": run.chunks_total, "chunks_total": run.chunks_total, "percent": 100
    }
    assert body["result"]["created"] == BILLABLE and body["result"]["missing"] == 0
    assert_one_record_per_billable_customer(seeded)
    assert_one_bill_notice_per_channel(seeded)
    # The chunks really were the worker's (by its log: a run's tasks store no result).
    assert chunks_done_by(worker) == run.chunks_total
    assert not TaskResult.objects.filter(task_name__startswith="bills.").exists()
    # The outbox dispatcher on the worker sends every notice, and the run is reconciled.
    wait_until(
        lambda: not Notification.objects.exclude(state=Notification.State.SENT).exists(),
        timeout=60, watch=[worker], message="every bill notice to be sent",
    )
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}
    reconciled = wait_until(
        lambda: ReconciliationRun.objects.filter(
            trigger=f"BILL_RUN {MONTH} {YEAR}", state="SUCCESS"
        ).first(),
        timeout=60, watch=[worker], message="the reconciliation after the run",
    )
    assert reconciled.fixed_count == 0

    # A second run of the month adds nothing.
    again = wait_task(api, generate(api), watch=[worker])
    assert again["status"] == "SUCCESS", again
    assert (again["result"]["created"], again["result"]["skipped"]) == (0, BILLABLE)
    assert Payment.objects.count() == BILLABLE
    assert Notification.objects.count() == len(seeded.phones) + len(seeded.emails)


def test_two_runs_fired_at_once(client_as, start_worker):
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(1000)
    worker = start_worker()
    start = threading.Barrier(2)
    task_ids: list[str] = []
    errors: list[BaseException] = []

    def fire() -> None:
        try:
            client = ApiClient()
            client.credentials = api.credentials
            start.wait(timeout=10)
            task_ids.append(generate(client))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert len(task_ids) == 2

    results = [wait_task(api, task_id, watch=[worker]) for task_id in task_ids]

    assert [r["status"] for r in results] == ["SUCCESS", "SUCCESS"], results
    runs = list(BillRun.objects.filter(task_id__in=task_ids))
    assert [run.missing_count for run in runs] == [0, 0]
    assert sum(run.created_count for run in runs) == 1000
    assert [run.billable_count for run in runs] == [1000, 1000]
    assert_one_record_per_billable_customer(seeded)
    assert_one_bill_notice_per_channel(seeded)


def test_a_worker_killed_mid_run_then_a_new_worker_finishes_it(client_as, start_worker):
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(3000)
    # Short enough that kombu could give the killed worker's messages back too.
    limits = {"CELERY_VISIBILITY_TIMEOUT": 30, "CELERY_TASK_TIME_LIMIT": 20,
              "CELERY_TASK_SOFT_TIME_LIMIT": 15}
    first = start_worker(**limits)

    task_id = generate(api)

    def mid_run():
        run = BillRun.objects.filter(task_id=task_id).values("chunks_done", "chunks_total")
        run = run.first()
        return run and 3 <= run["chunks_done"] <= run["chunks_total"] // 2

    wait_until(mid_run, timeout=90, interval=0.005, watch=[first],
               message="the run to be part done")
    first.kill()

    run = BillRun.objects.get(task_id=task_id)
    assert run.state == BillRun.State.RUNNING
    assert 0 < run.chunks_done < run.chunks_total, (run.chunks_done, run.chunks_total)
    second = start_worker(**limits)
    # Hands over again every chunk not done (the new worker also takes what was queued).
    assert bills.bill_runs_resume(stale_seconds=0) > 0

    body = wait_task(api, task_id, watch=[second])

    assert body["status"] == "SUCCESS", body
    run.refresh_from_db()
    assert (run.billable_count, run.created_count, run.missing_count) == (3000, 3000, 0)
    assert run.chunks_done == run.chunks_total
    assert not run.chunks.filter(done_at__isnull=True).exists()
    assert_one_record_per_billable_customer(seeded)
    assert_one_bill_notice_per_channel(seeded)
    # The new worker did the rest of the chunks.
    assert chunks_done_by(second) > 0


def test_a_run_left_running_with_every_chunk_done_is_closed(client_as, start_worker):
    """The worker died after the last chunk committed and before it closed the run: a
    redelivered chunk, or the resume sweep, closes it."""
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(200)
    worker = start_worker()
    task_id = generate(api)
    assert wait_task(api, task_id, watch=[worker])["status"] == "SUCCESS"
    run = BillRun.objects.get(task_id=task_id)
    lost = {"state": BillRun.State.RUNNING, "finished_at": None, "missing_count": None}

    BillRun.objects.filter(pk=run.pk).update(**lost)
    publish("bills.run_chunk", args=[run.chunks.last().pk])  # a redelivery
    body = wait_task(api, task_id, timeout=30, watch=[worker])
    assert body["status"] == "SUCCESS" and body["result"]["missing"] == 0, body

    BillRun.objects.filter(pk=run.pk).update(**lost)
    bills.bill_runs_resume(stale_seconds=0)
    body = wait_task(api, task_id, timeout=30, watch=[worker])
    assert body["status"] == "SUCCESS" and body["result"]["missing"] == 0, body
    assert_one_record_per_billable_customer(seeded)


def test_a_run_whose_message_was_lost_is_resumed_by_the_sweep(
    client_as, producer, private_redis, start_worker
):
    """The broker took the run's message, then restarted without persistence: the run is
    PENDING with ``enqueued`` true and nothing will come of it but the sweep."""
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(300)
    producer.point_at(private_redis.url)
    task_id = generate(api)
    run = BillRun.objects.get(task_id=task_id)
    assert (run.state, run.enqueued) == (BillRun.State.PENDING, True)
    private_redis.stop()
    private_redis.start()  # "--save '' --appendonly no": the message is gone
    worker = start_worker(broker_url=private_redis.url)

    assert poll(lambda: BillRun.objects.get(pk=run.pk).state != "PENDING", timeout=3) is None
    assert api.get(f"/tasks/{task_id}").json()["status"] == "PENDING"
    assert bills.bill_runs_resume() == 0  # it has not been quiet for RUN_STALE_SECONDS yet
    assert bills.bill_runs_resume(stale_seconds=0) == 1

    body = wait_task(api, task_id, timeout=90, watch=[worker])
    assert body["status"] == "SUCCESS", body
    assert (body["result"]["created"], body["result"]["missing"]) == (300, 0)
    assert_one_record_per_billable_customer(seeded)
    assert_one_bill_notice_per_channel(seeded)


def test_a_sweep_resending_a_run_that_was_not_lost_changes_nothing(client_as, start_worker):
    """Two deliveries at once: the sweep hands over a run (and its chunks) still queued."""
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(1000)
    worker = start_worker(concurrency=4)
    task_id = generate(api)
    resent = 0
    while BillRun.objects.get(task_id=task_id).state in ("PENDING", "RUNNING"):
        resent += bills.bill_runs_resume(stale_seconds=0)
        time.sleep(0.02)
    assert resent > 0

    body = wait_task(api, task_id, watch=[worker])
    assert body["status"] == "SUCCESS", body
    run = BillRun.objects.get(task_id=task_id)
    assert (run.created_count, run.missing_count, run.newcomer_count) == (1000, 0, 0)
    assert run.chunks_done == run.chunks_total
    assert_one_record_per_billable_customer(seeded)
    assert_one_bill_notice_per_channel(seeded)
    # Every duplicate was received and found done.
    wait_until(lambda: chunks_done_by(worker) >= run.chunks_total + 1, timeout=30,
               watch=[worker], message="the duplicate chunks to be taken")


def test_a_customer_created_during_a_run_is_billed_and_the_run_succeeds(
    client_as, start_worker
):
    api, _ = client_as(UserKind.MANAGER)
    seeded = seed_customers(600)
    last = max(seeded.billable)
    switched_off = Customer.objects.filter(
        pk__in=seeded.non_billable, is_active=False, pk__lt=last - 3 * CHUNK_SIZE
    ).order_by("pk").first()
    worker = start_worker()
    # Another transaction holds the last billable customer's row: the chunk inserting
    # their record waits on it (the foreign key check), so the run stays open.
    blocker = psycopg.connect(database_url())
    try:
        blocker.execute("SELECT 1 FROM billing_customer WHERE id = %s FOR UPDATE", [last])
        task_id = generate(api)
        wait_until(lambda: BillRun.objects.get(task_id=task_id).state == "RUNNING",
                   timeout=30, interval=0.02, watch=[worker], message="the run to be planned")
        newcomer = Customer.objects.create(
            name="Newcomer", phone="01799999999", package_id=Customer.objects.get(
                pk=last).package_id,
        )
        # And one planned customer switched on after their chunk went by.
        wait_until(
            lambda: BillRunChunk.objects.filter(
                run__task_id=task_id, first_customer_id__lte=switched_off.pk,
                last_customer_id__gte=switched_off.pk, done_at__isnull=False,
            ).exists(),
            timeout=30, watch=[worker], message="the switched-off customer's chunk",
        )
        Customer.objects.filter(pk=switched_off.pk).update(
            is_active=True, updated_at=timezone.now()
        )
        assert BillRun.objects.get(task_id=task_id).state == "RUNNING"
    finally:
        blocker.rollback()
        blocker.close()

    body = wait_task(api, task_id, watch=[worker])

    assert body["status"] == "SUCCESS", body
    result = body["result"]
    assert (result["missing"], result["billable"], result["newcomers"]) == (0, 600, 2)
    assert result["created"] == 602
    billed = Counter(
        Payment.objects.filter(billing_year=YEAR, billing_month=MONTH)
        .values_list("customer_id", flat=True)
    )
    assert set(billed) == set(seeded.billable) | {newcomer.pk, switched_off.pk}
    assert set(billed.values()) == {1}


@pytest.fixture
def payment_trigger():
    """``payment_trigger(body)``: a PL/pgSQL body run before every update of a record (a
    database that refuses, or takes its time); dropped at the end of the test."""
    def install(body: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"""
                CREATE OR REPLACE FUNCTION test_payment_update() RETURNS trigger AS $$
                BEGIN {body} RETURN NEW; END $$ LANGUAGE plpgsql;
                CREATE TRIGGER test_payment_update BEFORE UPDATE ON billing_payment
                FOR EACH ROW EXECUTE FUNCTION test_payment_update();
            """)

    yield install
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_payment_update ON billing_payment;"
                       "DROP FUNCTION IF EXISTS test_payment_update();")


@pytest.mark.parametrize("fault, error", [
    ("RAISE EXCEPTION 'records are frozen';", "records are frozen"),
    ("PERFORM pg_sleep(8);", "SoftTimeLimitExceeded"),
])
def test_a_reconciliation_that_fails_ends_failed_with_its_error(
    client_as, start_worker, payment_trigger, fault, error
):
    api, _ = client_as(UserKind.ADMIN)
    seeded = seed_customers(20)
    customer_id = min(seeded.billable)
    wrong = Payment.objects.create(
        customer_id=customer_id, billing_year=YEAR, billing_month=MONTH,
        bill_amount=Decimal("500.00"), amount=Decimal("9.00"),
    )
    worker = start_worker(CELERY_TASK_SOFT_TIME_LIMIT=2, CELERY_TASK_TIME_LIMIT=20)
    payment_trigger(fault)
    with transaction.atomic():
        run = reconciliation_start(trigger="TEST")

    body = wait_task(api, run.task_id, timeout=60, watch=[worker])

    assert body["status"] == "FAILURE", body
    assert error in body["result"]["error"], body
    run.refresh_from_db()
    assert run.state == ReconciliationRun.State.FAILED and run.finished_at is not None
    assert "chunk 0" in run.error
    assert Payment.objects.get(pk=wrong.pk).amount == Decimal("9.00")  # rolled back
    assert worker.alive()


SEED_PRIVATE = """
from decimal import Decimal
from billing.models import BillRun, Customer, Package
home = Package.objects.create(name="Home", speed_mbps=20, price=Decimal("500.00"))
Customer.objects.bulk_create(
    Customer(name=f"P{n}", phone=f"0175{n:07d}", package=home) for n in range(120)
)
run = BillRun.objects.create(task_id="pg-down-run", billing_year=2030, billing_month="MAY",
                             enqueued=True)
print(run.pk)
"""

RUN_STATE = """
from billing.models import BillRun, Payment
run = BillRun.objects.get(task_id="pg-down-run")
print(run.state, run.created_count, run.missing_count,
      Payment.objects.filter(billing_month="MAY", billing_year=2030).count())
"""


def test_a_run_taken_while_postgresql_was_down_is_finished(
    private_postgres, producer, queue, start_worker  # noqa: F811
):
    """The worker takes the run's message while its database is down: the run still ends
    SUCCESS (the task retries; and the sweep hands it over again once it has been quiet)."""
    def shell(code: str) -> str:
        return private_postgres.manage(
            "shell", "-c", code, CELERY_BROKER_URL=producer.broker_url,
            CELERY_TASK_ALWAYS_EAGER="false", CELERY_QUEUE_PREFIX=f"{queue}.",
            BILL_RUN_CHUNK_SIZE=str(CHUNK_SIZE),
        ).strip().splitlines()[-1]  # after the shell's own notice of what it imported

    run_id = int(shell(SEED_PRIVATE))
    worker = start_worker(DATABASE_URL=private_postgres.url)
    private_postgres.stop()
    assert publish("bills.run_execute", args=[run_id], task_id="pg-down-run")
    wait_until(lambda: "pg-down-run" in worker.output() and (
        "OperationalError" in worker.output() or "Retry" in worker.output()),
        timeout=60, watch=[worker], message="the worker to meet the database down")
    private_postgres.start()
    shell("from billing.bills import bill_runs_resume; print(bill_runs_resume(stale_seconds=0))")

    state = poll(lambda: (s := shell(RUN_STATE)).startswith(("SUCCESS", "FAILED")) and s,
                 timeout=120, interval=1)
    assert state == "SUCCESS 120 0 120", (state, worker.tail())
