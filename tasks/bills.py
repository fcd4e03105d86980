from celery import shared_task

from billing import bills
from tasks.base import RETRY_TRANSIENT


@shared_task(name="bills.run_execute", **RETRY_TRANSIENT)
def bill_run_execute(run_id: int) -> dict:
    bills.bill_run_plan(run_id=run_id)
    from billing.models import BillRun

    return bills.bill_run_result(BillRun.objects.get(pk=run_id))


@shared_task(name="bills.run_chunk", **RETRY_TRANSIENT)
def bill_run_chunk(chunk_id: int) -> int:
    return bills.bill_chunk_process(chunk_id=chunk_id)


@shared_task(name="bills.run_monthly", **RETRY_TRANSIENT)
def bill_run_monthly() -> str:
    return bills.bill_run_monthly().task_id


@shared_task(name="bills.runs_resume", **RETRY_TRANSIENT)
def bill_runs_resume() -> int:
    return bills.bill_runs_resume()
