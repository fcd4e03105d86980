from celery import shared_task

from billing import bills
from tasks.base import ROW_STATE, failing_run

# GET /tasks/{id} reads a run's row, never its task's result: none is stored.


@shared_task(name="bills.run_execute", **ROW_STATE)
def bill_run_execute(run_id: int) -> None:
    with failing_run(lambda error: bills.bill_run_fail(run_id=run_id, error=error)):
        bills.bill_run_plan(run_id=run_id)


@shared_task(name="bills.run_chunk", **ROW_STATE)
def bill_run_chunk(chunk_id: int) -> int:
    with failing_run(lambda error: bills.bill_chunk_fail(chunk_id=chunk_id, error=error)):
        return bills.bill_chunk_process(chunk_id=chunk_id)


@shared_task(name="bills.run_monthly", **ROW_STATE)
def bill_run_monthly() -> str:
    return bills.bill_run_monthly().task_id


@shared_task(name="bills.runs_resume", **ROW_STATE)
def bill_runs_resume() -> int:
    return bills.bill_runs_resume()
