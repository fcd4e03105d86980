"""Bill runs on a real worker (PostgreSQL, Redis, a Celery worker subprocess): a whole run,
two runs at once, and a worker killed with SIGKILL half way."""

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django_celery_results.models import TaskResult

from billing import bills
from billing.models import BillRun, Notification, Payment, ReconciliationRun
from core.enums import UserKind
from core.queue import publish
from tests.conftest import ApiClient
from tests.worker.conftest import CHUNK_SIZE, Seeded, seed_customers, wait_task, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

MONTH, YEAR = "MARCH", 2030
BILLABLE = 1500


def generate(api: ApiClient) -> str:
    response = api.post(f"/customers/bills/generate?month={MONTH}&year={YEAR}")
    assert response.status_code == 202, response.content
    return response.json()["task_id"]


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
    # The chunks really were the worker's: Celery stored each one's result, with its name.
    chunks = TaskResult.objects.filter(task_name="bills.run_chunk", status="SUCCESS")
    assert chunks.count() == run.chunks_total
    assert set(chunks.values_list("worker", flat=True)) == {worker.hostname}
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
    by_second = TaskResult.objects.filter(
        task_name="bills.run_chunk", worker=second.hostname
    )
    assert by_second.exists()


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
