"""Router runs (a sync or an import of one router): requested, carried out in short
steps by the network queue, and resumed by a sweep when they stop making progress.

One live run of each kind per router (a database constraint): a second request while
one is PENDING or RUNNING gets that run back. Each step of a run is a delivery of its
task (``network.router_sync`` or ``network.router_import``) that works for a bounded
time, records its progress on the run and sends the next step; a step received twice,
or after the run finished, does nothing more than a step would.
"""

import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from billing.models import Router, RouterRun
from core.queue import publish, publish_on_commit

SYNC_TASK = "network.router_sync"
IMPORT_TASK = "network.router_import"
FINISHED = (RouterRun.State.SUCCESS, RouterRun.State.FAILED)
LIVE = (RouterRun.State.PENDING, RouterRun.State.RUNNING)
INTERNAL_KEYS = {"pending", "surveyed_at"}


def router_run_request(
    *, router: Router, kind: str, requested_by: User | None, trigger: str = "ON_DEMAND",
    dry_run: bool = False,
) -> RouterRun:
    """The router's live run of this kind, or a new one handed to the network queue after
    commit. An import asked with another ``dry_run`` than the live one's waits for it:
    the caller gets the live run."""
    live = RouterRun.objects.filter(router=router, kind=kind, state__in=LIVE).first()
    if live is not None:
        return live
    try:
        with transaction.atomic():
            run = RouterRun.objects.create(
                router=router, kind=kind, dry_run=dry_run, trigger=trigger,
                requested_by=requested_by, task_id=str(uuid.uuid4()),
            )
    except IntegrityError:
        # Another request made it between the look and the insert.
        return RouterRun.objects.get(router=router, kind=kind, state__in=LIVE)
    _send_step(run)
    return run


def router_run_start(run_id: int) -> RouterRun | None:
    """Mark the run RUNNING on its first step; None when it has finished already."""
    with transaction.atomic():
        run = RouterRun.objects.select_for_update().select_related("router").get(pk=run_id)
        if run.state in FINISHED:
            return None
        if run.state == RouterRun.State.PENDING:
            run.state = RouterRun.State.RUNNING
            run.started_at = run.last_progress_at = timezone.now()
            run.save(update_fields=["state", "started_at", "last_progress_at"])
        return run


def router_run_progress(run: RouterRun, result: dict) -> None:
    """Keep what the run has done so far, and hand its next step to the queue."""
    RouterRun.objects.filter(pk=run.pk, state=RouterRun.State.RUNNING).update(
        result=result, last_progress_at=timezone.now()
    )
    _send_step(run)


def _send_step(run: RouterRun, *, now: bool = False) -> bool:
    """Hand the run's next step to the network queue, after commit unless ``now``."""
    if now:
        if run.kind == RouterRun.Kind.SYNC:
            return publish(SYNC_TASK, args=[run.pk], task_id=run.task_id)
        return publish(IMPORT_TASK, args=[run.pk], task_id=run.task_id)
    if run.kind == RouterRun.Kind.SYNC:
        publish_on_commit(SYNC_TASK, args=[run.pk], task_id=run.task_id)
    else:
        publish_on_commit(IMPORT_TASK, args=[run.pk], task_id=run.task_id)
    return True


def router_run_finish(run: RouterRun, result: dict) -> None:
    now = timezone.now()
    RouterRun.objects.filter(pk=run.pk, state=RouterRun.State.RUNNING).update(
        state=RouterRun.State.SUCCESS, result=result, finished_at=now, last_progress_at=now
    )


def router_run_fail(*, run_id: int, error: str) -> None:
    RouterRun.objects.filter(pk=run_id).exclude(state__in=FINISHED).update(
        state=RouterRun.State.FAILED, error=error, finished_at=timezone.now()
    )


def router_runs_resume(*, stale_seconds: int | None = None) -> int:
    """Hand over again every run (sync or import) with no progress for
    ``ROUTER_RUN_STALE_SECONDS``, whatever happened to its message."""
    if stale_seconds is None:
        stale_seconds = settings.ROUTER_RUN_STALE_SECONDS
    sent = 0
    for run in RouterRun.objects.stalled(stale_seconds).only("pk", "kind", "task_id"):
        # The hand-over counts as progress: the next sweep gives it a full period.
        RouterRun.objects.filter(pk=run.pk).update(last_progress_at=timezone.now())
        sent += _send_step(run, now=True)
    return sent


def router_run_result(run: RouterRun) -> dict:
    return {
        "run_uid": str(run.uid),
        "router_uid": str(run.router.uid),
        "kind": run.kind,
        "dry_run": run.dry_run,
        "state": run.state,
        # A run not done keeps its work list in its result: not the caller's business.
        **{key: value for key, value in run.result.items() if key not in INTERNAL_KEYS},
        "error": run.error,
    }
