"""The network queue: connection changes carried out on routers (retrying while a router
does not answer), router syncs and imports, and their sweeps.

The change's state lives in its ConnectionChange row (results are not stored); the
row also says when the next attempt is due, so a duplicate delivery does nothing."""

from celery import shared_task

from billing import router_runs
from billing.connections import connection_change_attempt
from billing.router_import import router_import_step
from billing.router_sync import router_sync_step
from billing.router_sync import routers_sync_all as router_sync_all_request
from tasks.base import RETRY_TRANSIENT, ROW_STATE, failing_run


@shared_task(
    name="network.connection_change_apply", bind=True, max_retries=None, acks_late=True,
    ignore_result=True,
)
def connection_change_apply(self, change_id: int) -> bool:
    delivery = connection_change_attempt(change_id=change_id, scheduled=True)
    if delivery.retry_in is None:
        return delivery.done
    if self.request.is_eager:
        # In-process mode must not hold a request in a retry loop; the error and the
        # next attempt's time are recorded, and the sweep sends it when overdue.
        return False
    raise self.retry(exc=delivery.error, countdown=delivery.retry_in)


@shared_task(name="network.connection_changes_resend", ignore_result=True, **RETRY_TRANSIENT)
def connection_changes_resend() -> int:
    from billing.connections import connection_changes_resend as resend

    return resend()


@shared_task(name="network.router_sync", **ROW_STATE)
def router_sync(run_id: int) -> None:
    with failing_run(lambda error: router_runs.router_run_fail(run_id=run_id, error=error)):
        router_sync_step(run_id=run_id)


@shared_task(name="network.router_import", **ROW_STATE)
def router_import(run_id: int) -> None:
    with failing_run(lambda error: router_runs.router_run_fail(run_id=run_id, error=error)):
        router_import_step(run_id=run_id)


@shared_task(name="network.routers_sync_all", **ROW_STATE)
def routers_sync_all() -> int:
    return router_sync_all_request()


@shared_task(name="network.router_runs_resume", **ROW_STATE)
def router_runs_resume() -> int:
    return router_runs.router_runs_resume()
