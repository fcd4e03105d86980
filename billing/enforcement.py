"""What a customer's connection should be on its router, and the steps that make the
router agree: the one home of the enforcement rules, used by a single change
(``billing.connections``) and by a router's sync (``billing.router_sync``) alike.

- PPPoE: the customer's secret (named by their username) is disabled exactly when the
  customer is not active, carries their package's profile, and has no live session
  while disabled. A missing secret is created when we know its password. A profile
  change drops the live session too: RouterOS applies a profile when the session
  starts again.
- STATIC and DHCP: the customer's address is in the blocked address list
  (``ROUTER_BLOCKED_ADDRESS_LIST``) exactly when they are not active. The entries we
  add carry the comment ``billing:<customer uid>``; an entry without it belongs to
  someone else and is never changed or removed.
- Nothing on a router that matches no customer is ever touched.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Q

from billing.models import Customer, RouterAction
from billing.routeros import RouterClient, RouterError
from core.enums import ConnectionType, Status

OWNER_PREFIX = "billing:"
Action = RouterAction.Action

# The customers a router enforces: those on it with something to enforce.
ENFORCEABLE = (
    Q(connection_type=ConnectionType.PPPOE) & ~Q(username="")
    | Q(connection_type__in=[ConnectionType.STATIC, ConnectionType.DHCP]) & ~Q(ip_address="")
)


def owner_comment(customer_uid: str) -> str:
    return f"{OWNER_PREFIX}{customer_uid}"


@dataclass(frozen=True)
class Target:
    """What one customer's connection should be on its router."""

    customer_id: int
    customer_uid: str
    connection_type: str
    enabled: bool
    username: str = ""
    password: str = ""
    profile: str = ""
    address: str = ""

    @property
    def is_secret(self) -> bool:
        return self.connection_type == ConnectionType.PPPOE

    @property
    def name(self) -> str:
        """What the router knows the customer by: the secret's name or the address."""
        return self.username if self.is_secret else self.address


def target_of(customer: Customer) -> Target | None:
    """The customer's target (its package loaded), or None when there is nothing to
    enforce (no username, or no address)."""
    enabled = customer.is_active and customer.status != Status.REMOVED
    common = {"customer_id": customer.pk, "customer_uid": str(customer.uid),
              "connection_type": customer.connection_type, "enabled": enabled}
    if customer.connection_type == ConnectionType.PPPOE:
        if not customer.username:
            return None
        return Target(**common, username=customer.username, password=customer.password,
                      profile=customer.package.profile_name)
    if not customer.ip_address:
        return None
    return Target(**common, address=customer.ip_address)


@dataclass
class Observed:
    """What a router holds for one customer."""

    secret: dict | None = None
    sessions: list[dict] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)  # blocked-list entries at its address


@dataclass(frozen=True)
class Step:
    """One call that brings the router closer to the target; ``call`` is None for a
    difference we may not repair (it is drift, reported, and the change fails)."""

    action: str
    detail: dict
    call: Callable[[RouterClient], None] | None


def observe(client: RouterClient, target: Target) -> Observed:
    """The router's state for one customer, by filtered reads."""
    if target.is_secret:
        return Observed(
            secret=client.secret_named(target.username),
            sessions=client.sessions_named(target.username),
        )
    return Observed(entries=client.address_entries(blocked_list(), target.address))


def blocked_list() -> str:
    return settings.ROUTER_BLOCKED_ADDRESS_LIST


def steps_needed(target: Target, observed: Observed) -> list[Step]:
    """The calls that make the router agree with the target; none when it does."""
    return _secret_steps(target, observed) if target.is_secret else _address_steps(target, observed)


def _secret_steps(target: Target, observed: Observed) -> list[Step]:
    secret = observed.secret
    disabled = "false" if target.enabled else "true"
    if secret is None:
        if not target.password:
            return [Step(Action.ADD_SECRET, {"missing": True}, None)]
        fields = {"name": target.username, "password": target.password, "service": "pppoe",
                  "profile": target.profile, "disabled": disabled,
                  "comment": owner_comment(target.customer_uid)}
        return [Step(Action.ADD_SECRET, {"profile": target.profile, "disabled": disabled},
                     lambda client: client.add_secret(fields))]
    steps = []
    secret_id = secret[".id"]
    if secret.get("disabled", "false") != disabled:
        steps.append(Step(
            Action.ENABLE if target.enabled else Action.DISABLE,
            {"disabled": [secret.get("disabled", "false"), disabled]},
            lambda client: client.set_secret(secret_id, {"disabled": disabled}),
        ))
    profile_changes = target.profile and secret.get("profile", "") != target.profile
    if profile_changes:
        steps.append(Step(
            Action.SET_PROFILE, {"profile": [secret.get("profile", ""), target.profile]},
            lambda client: client.set_secret(secret_id, {"profile": target.profile}),
        ))
    if not target.enabled or profile_changes:
        for session in observed.sessions:
            steps.append(_drop(session))
    return steps


def _drop(session: dict) -> Step:
    session_id = session[".id"]
    return Step(Action.DROP_SESSION, {"address": session.get("address", "")},
                lambda client: client.drop_session(session_id))


def _address_steps(target: Target, observed: Observed) -> list[Step]:
    comment = owner_comment(target.customer_uid)
    live = [entry for entry in observed.entries if entry.get("disabled", "false") != "true"]
    ours = [entry for entry in live if entry.get("comment", "") == comment]
    if not target.enabled:
        if live:
            return []  # blocked already (by any entry: the router's rules see the address)
        return [Step(Action.BLOCK, {"list": blocked_list()},
                     lambda client: client.add_address(blocked_list(), target.address, comment))]
    steps = [_unblock(entry) for entry in ours]
    if len(live) > len(ours):
        steps.append(Step(Action.UNBLOCK, {"list": blocked_list(), "not_ours": True}, None))
    return steps


def _unblock(entry: dict) -> Step:
    entry_id = entry[".id"]
    return Step(Action.UNBLOCK, {"list": entry.get("list", blocked_list())},
                lambda client: client.remove_address(entry_id))


def step_problem(step: Step) -> str:
    """Why a step cannot be taken (its call is None), as an operator reads it."""
    if step.action == Action.ADD_SECRET:
        return "no PPPoE secret of this name on the router, and no password to create it"
    return "the address is blocked by an address-list entry that billing does not own"


def apply_steps(
    client: RouterClient, *, router_id: int, target: Target, steps: list[Step],
    change_id: int | None = None, run_id: int | None = None,
) -> None:
    """Take the steps in order, recording each with its outcome; the first that fails
    (or may not be taken) raises ``RouterError`` and the rest wait for the next try."""
    for step in steps:
        error = step_problem(step) if step.call is None else ""
        if step.call is not None:
            try:
                step.call(client)
            except RouterError as failure:
                error = str(failure)
        RouterAction.objects.create(
            router_id=router_id, customer_id=target.customer_id, run_id=run_id,
            change_id=change_id, target=target.name[:100], action=step.action,
            detail=step.detail,
            outcome=RouterAction.Outcome.FAILED if error else RouterAction.Outcome.OK,
            error=error[:1000],
        )
        if error:
            raise RouterError(f"{step.action} {target.name}: {error}")


def stale_entries(entries: list[dict], targets: dict[str, Target]) -> list[dict]:
    """Blocked-list entries of ours (by their comment) that no target wants any longer:
    the customer's address changed, or the customer is gone from this router."""
    stale = []
    for entry in entries:
        comment = entry.get("comment", "")
        if not comment.startswith(OWNER_PREFIX):
            continue
        target = targets.get(comment.removeprefix(OWNER_PREFIX))
        if target is None or target.is_secret or target.address != entry.get("address"):
            stale.append(entry)
    return stale
