from celery import shared_task

from billing import reconciliation
from tasks.base import ROW_STATE, failing_run

# GET /tasks/{id} reads the run's row, never its task's result: none is stored.


@shared_task(name="bills.reconciliation_execute", **ROW_STATE)
def reconciliation_execute(run_id: int) -> None:
    with failing_run(lambda error: reconciliation.reconciliation_fail(run_id=run_id, error=error)):
        reconciliation.reconciliation_plan(run_id=run_id)


@shared_task(name="bills.reconciliation_chunk", **ROW_STATE)
def reconciliation_chunk(chunk_id: int) -> None:
    def fail(error: str) -> None:
        reconciliation.reconciliation_chunk_fail(chunk_id=chunk_id, error=error)

    with failing_run(fail):
        reconciliation.reconciliation_chunk_process(chunk_id=chunk_id)


@shared_task(name="bills.reconciliation_nightly", **ROW_STATE)
def reconciliation_nightly() -> str:
    return reconciliation.reconciliation_start(trigger="NIGHTLY").task_id


@shared_task(name="bills.reconciliation_resume", **ROW_STATE)
def reconciliation_runs_resume() -> int:
    return reconciliation.reconciliation_runs_resume()
