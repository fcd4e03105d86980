"""A router's sync: read its state in bulk, compare it with what the database wants
(``billing.enforcement``), repair the differences, and record what it found.

A run's first step lists the router's secrets, live sessions and blocked addresses
(three calls whatever the number of customers) and keeps the customers that differ.
Each drifted customer is repaired through the single change path
(``billing.connections``: a ConnectionChange of reason SYNC, its lease, its retries):
what a repair applies is the customer's state when it claims the change, so a sync
never undoes a payment that landed meanwhile, and a customer whose own change is
still on its way is left to that change. Steps work for ``ROUTER_SYNC_BATCH_SECONDS``
and hand the rest to the next step; the last one lists the router again for the drift
that is left. Secrets and address-list entries that billing does not own are reported,
never changed.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import router_runs
from billing.connections import (
    connection_change_attempt,
    connection_change_request,
    connection_change_retry_later,
)
from billing.enforcement import (
    ENFORCEABLE,
    Observed,
    Target,
    blocked_list,
    stale_entries,
    steps_needed,
    target_of,
)
from billing.models import ConnectionChange, Customer, Router, RouterAction, RouterRun
from billing.routeros import RouterClient, RouterError, router_client
from core.enums import Status

# Kept on the router row and the run: enough for an operator to act on.
DRIFT_KEPT = 1000
# Repairs failing in a row before a step gives the router up (it stopped answering).
FAILURES_IN_A_ROW = 3


@dataclass
class Survey:
    """What one bulk listing of a router found."""

    at: datetime
    checked: int = 0
    drifted: dict[int, Observed] = field(default_factory=dict)
    unrepairable: int = 0
    drift: list[dict] = field(default_factory=list)
    stale: list[dict] = field(default_factory=list)  # our blocked entries nobody wants

    @property
    def drift_count(self) -> int:
        return len(self.drift)


def router_targets(router: Router) -> dict[str, Target]:
    """The router's customers' targets, by customer uid. A removed customer's username
    or address given again to a live customer is the live customer's."""
    customers = (
        Customer.objects.filter(ENFORCEABLE, router=router)
        .select_related("package")
        .order_by("pk")
    )
    live, removed = {}, {}
    for customer in customers.iterator(chunk_size=2000):
        target = target_of(customer)
        if target is not None:
            (removed if customer.status == Status.REMOVED else live)[target.customer_uid] = target
    taken = {target.name for target in live.values()}
    for uid, target in removed.items():
        if target.name not in taken:
            live[uid] = target
            taken.add(target.name)
    return live


def router_survey(client: RouterClient, router: Router) -> Survey:
    """List the router's state in bulk and compare it with every customer's target."""
    survey = Survey(at=timezone.now())
    targets = router_targets(router)
    secrets = {row["name"]: row for row in client.secrets()}
    sessions: dict[str, list[dict]] = {}
    for row in client.active_sessions():
        sessions.setdefault(row.get("name", ""), []).append(row)
    entries = client.address_list(blocked_list())
    at_address: dict[str, list[dict]] = {}
    for row in entries:
        at_address.setdefault(row.get("address", ""), []).append(row)
    for target in targets.values():
        survey.checked += 1
        if target.is_secret:
            observed = Observed(secret=secrets.get(target.username),
                                sessions=sessions.get(target.username, []))
        else:
            observed = Observed(entries=at_address.get(target.address, []))
        steps = steps_needed(target, observed)
        if not steps:
            continue
        survey.drift.append({
            "customer_id": target.customer_id, "customer_uid": target.customer_uid,
            "name": target.name, "what": [step.action for step in steps],
        })
        if all(step.call is None for step in steps):
            survey.unrepairable += 1
        else:
            survey.drifted[target.customer_id] = observed
    owned = {target.username for target in targets.values() if target.is_secret}
    for name in secrets:
        if name not in owned:
            survey.drift.append({"secret": name, "what": ["NO_CUSTOMER"]})
    survey.stale = stale_entries(entries, targets)
    for entry in survey.stale:
        survey.drift.append({"address": entry.get("address", ""), "what": ["STALE_ENTRY"]})
    return survey


def router_sync_step(*, run_id: int) -> None:
    """One step of a sync run: the survey (the first step), then repairs for a bounded
    time per step, and the closing survey (in the last step)."""
    run = router_runs.router_run_start(run_id)
    if run is None:
        return
    router = run.router
    if not router.is_enabled or router.status == Status.REMOVED:
        router_runs.router_run_fail(run_id=run.pk, error=f"router {router.name} is switched off")
        return
    ends_at = time.monotonic() + settings.ROUTER_SYNC_BATCH_SECONDS
    client = router_client(router)
    try:
        result, survey = run.result, None
        if "pending" not in result:
            survey = router_survey(client, router)
            _remove_stale(client, router, run, survey.stale)
            result = {
                "checked": survey.checked, "changed": 0, "failed": survey.unrepairable,
                "skipped": 0, "drift_before": survey.drift_count,
                "surveyed_at": survey.at.isoformat(),
                "pending": [[pk, _observed_json(obs)] for pk, obs in survey.drifted.items()],
            }
            if result["pending"]:
                # Listing a big router takes a while: the repairs start in the next step.
                router_runs.router_run_progress(run, result)
                return
        _repair_until(client, router, run, result, ends_at)
        if result["pending"]:
            router_runs.router_run_progress(run, result)
            return
        if survey is None or survey.drifted or survey.stale:
            survey = router_survey(client, router)  # what is left after the repairs
        del result["pending"], result["surveyed_at"]
        result["drift_after"] = survey.drift_count
        _router_synced(router, survey)
        router_runs.router_run_finish(run, result)
    except RouterError as error:
        _router_failed(router, str(error))
        router_runs.router_run_fail(run_id=run.pk, error=str(error)[:2000])
    finally:
        client.close()


def _repair_until(client, router, run, result, ends_at: float) -> None:
    surveyed_at = datetime.fromisoformat(result["surveyed_at"])
    failures = 0
    # At least one repair per step, so that a step always makes progress.
    while result["pending"]:
        customer_id, observed = result["pending"][0]
        outcome = _repair(client, router, run, customer_id, Observed(**observed), surveyed_at)
        result["pending"].pop(0)
        result[outcome] += 1
        failures = failures + 1 if outcome == "failed" else 0
        if failures >= FAILURES_IN_A_ROW:
            # Their changes retry on their own; the rest waits for the next sync.
            raise RouterError(f"router {router.name} stopped answering: {failures} repairs "
                              f"failed in a row")
        if time.monotonic() >= ends_at:
            return


def _repair(
    client, router, run, customer_id: int, observed: Observed, surveyed_at: datetime
) -> str:
    """Repair one drifted customer through the single change path: "changed",
    "failed" (its change retries on its own) or "skipped": left to its own change
    still on its way, brought in line by a change confirmed since the listing (a
    payment's, or this run's own step done before its worker died), or moved to
    another router."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update(of=("self",)).filter(
            pk=customer_id, router=router
        ).first()
        if customer is None or ConnectionChange.objects.filter(
            customer=customer, confirmed_at__isnull=True, superseded=False
        ).exists():
            return "skipped"
        if customer.network_confirmed_at and customer.network_confirmed_at >= surveyed_at:
            return "skipped"
        change = connection_change_request(
            customer=customer, enable=customer.is_active, reason=ConnectionChange.Reason.SYNC,
            requested_by=None, send=False,
        )
    delivery = connection_change_attempt(
        change_id=change.pk, scheduled=False, client=client, run_id=run.pk, observed=observed,
    )
    if delivery.retry_in is not None:
        connection_change_retry_later(change, delivery.retry_in)
        return "failed"
    return "changed" if delivery.done else "skipped"


def _remove_stale(client, router, run, entries: list[dict]) -> None:
    for entry in entries:
        error = ""
        try:
            client.remove_address(entry[".id"])
        except RouterError as failure:
            error = str(failure)
        RouterAction.objects.create(
            router=router, run=run, target=entry.get("address", "")[:100],
            action=RouterAction.Action.UNBLOCK,
            detail={"list": entry.get("list", ""), "comment": entry.get("comment", ""),
                    "stale": True},
            outcome=RouterAction.Outcome.FAILED if error else RouterAction.Outcome.OK,
            error=error[:1000],
        )


def _observed_json(observed: Observed) -> dict:
    # Kept on the run until repaired: without the secret's password.
    secret = observed.secret and {k: v for k, v in observed.secret.items() if k != "password"}
    return {"secret": secret, "sessions": observed.sessions, "entries": observed.entries}


def _router_synced(router: Router, survey: Survey) -> None:
    Router.objects.filter(pk=router.pk).update(
        last_sync_at=timezone.now(), last_sync_status=RouterRun.State.SUCCESS, last_error="",
        consecutive_failures=0, drift_count=survey.drift_count, drift=survey.drift[:DRIFT_KEPT],
    )


def _router_failed(router: Router, error: str) -> None:
    Router.objects.filter(pk=router.pk).update(
        last_sync_at=timezone.now(), last_sync_status=RouterRun.State.FAILED,
        last_error=error[:2000], consecutive_failures=F("consecutive_failures") + 1,
    )


def routers_sync_all() -> int:
    """Ask a sync of every router switched on (the beat's); returns how many."""
    routers = Router.objects.filter(is_enabled=True).exclude(status=Status.REMOVED)
    for router in routers:
        router_runs.router_run_request(
            router=router, kind=RouterRun.Kind.SYNC, requested_by=None, trigger="SCHEDULE"
        )
    return len(routers)

