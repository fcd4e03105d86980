from celery import shared_task

from billing import reconciliation
from tasks.base import RETRY_TRANSIENT


@shared_task(name="bills.reconciliation_execute", **RETRY_TRANSIENT)
def reconciliation_execute(run_id: int) -> dict:
    run = reconciliation.reconciliation_execute(run_id=run_id)
    return reconciliation.reconciliation_result(run)


@shared_task(name="bills.reconciliation_nightly", **RETRY_TRANSIENT)
def reconciliation_nightly() -> str:
    return reconciliation.reconciliation_start(trigger="NIGHTLY").task_id
