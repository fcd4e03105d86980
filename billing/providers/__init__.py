"""Payment providers behind one small interface. Each is switched on by its own settings
(its base URL set) and answers in the same few types; ``billing.online_payments`` holds
the rules and never speaks a provider's protocol itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol

import requests

from core.enums import OnlineProvider

CONNECT_SECONDS = 5.0


class ProviderError(Exception):
    """The provider refused, or answered something we cannot use. ``answer``: what it said."""

    def __init__(self, message: str, answer: dict | None = None) -> None:
        super().__init__(message)
        self.answer = answer or {}


class ProviderUnavailable(ProviderError):
    """No answer in time (timeout, connection refused): the outcome is unknown."""


@dataclass(frozen=True)
class Checkout:
    """A payment opened at the provider: where the customer goes to pay."""

    provider_payment_id: str
    redirect_url: str
    answer: dict = field(default_factory=dict)


class Status:
    COMPLETED = "COMPLETED"  # the provider holds the money
    PENDING = "PENDING"  # not finished (or not known yet): ask again later
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Outcome:
    """What the provider said, server to server, about one payment."""

    status: str
    transaction_id: str = ""
    amount: Decimal | None = None
    currency: str = ""
    invoice_number: str = ""
    answer: dict = field(default_factory=dict)
    # Why a completed payment is for a person to look at before it is credited
    # (SSLCommerz's risk flag); empty: nothing against it.
    hold: str = ""


@dataclass(frozen=True)
class Refund:
    transaction_id: str
    amount: Decimal
    answer: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """A verified server-to-server notice (a webhook): which payment, and its outcome.
    ``invoice_number`` or ``provider_payment_id`` names it; ``outcome`` None: nothing to
    do (a subscription confirmed)."""

    invoice_number: str = ""
    provider_payment_id: str = ""
    outcome: Outcome | None = None
    answer: dict = field(default_factory=dict)


class Provider(Protocol):
    code: str

    def create(self, *, amount: Decimal, currency: str, invoice_number: str,
               payer_reference: str, payer_name: str, payer_phone: str,
               callback_url: str) -> Checkout: ...

    def confirm(self, *, provider_payment_id: str, callback: dict) -> Outcome:
        """After the customer came back: settle the payment at the provider (bKash's
        execute) and say how it ended. The callback's fields only say which call to make;
        the outcome is the provider's answer."""

    def query(self, *, provider_payment_id: str) -> Outcome: ...

    def refund(self, *, provider_payment_id: str, transaction_id: str, amount: Decimal,
               invoice_number: str, reason: str) -> Refund: ...

    def notice(self, body: bytes) -> Notice:
        """A webhook's body, verified (raises ``ProviderError`` when it is not genuine)."""


def provider_for(code: str) -> Provider | None:
    """The provider ``code`` when it is switched on, else None."""
    if code == OnlineProvider.BKASH:
        from billing.providers.bkash import BkashProvider as gateway
    elif code == OnlineProvider.NAGAD:
        from billing.providers.nagad import NagadProvider as gateway
    elif code == OnlineProvider.SSLCOMMERZ:
        from billing.providers.sslcommerz import SslcommerzProvider as gateway
    else:
        return None
    return gateway() if gateway.enabled() else None


def enabled_providers() -> list[str]:
    return [code for code in OnlineProvider.values if provider_for(code) is not None]


# Helpers the providers share ---------------------------------------------------------


def unless_still_open(outcome: Outcome, ended: str | None) -> Outcome:
    """The provider's ``outcome``, except that a payment it still has open ends as the
    customer's way back says (``ended``: FAILED or CANCELLED): they left its page, so it
    will not finish there. Only the provider's word makes money, and a later success
    still counts."""
    if outcome.status == Status.PENDING and ended:
        return Outcome(ended, answer=outcome.answer)
    return outcome


def money(value) -> Decimal | None:
    """A provider's amount (a string, mostly) to two places; None when it is not one."""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def call_json(provider: str, method: str, url: str, *, timeout: float, **kwargs) -> dict:
    """One HTTP call to a provider, its JSON object answer. No answer in time, or an HTTP
    5xx: ``ProviderUnavailable`` (the outcome is unknown); a 4xx or an answer that is not
    a JSON object: ``ProviderError``. Nothing of the request (credentials) is in either."""
    try:
        response = requests.request(method, url, timeout=(CONNECT_SECONDS, timeout), **kwargs)
    except requests.RequestException as error:
        raise ProviderUnavailable(f"{provider} did not answer: {type(error).__name__}") from None
    try:
        answer = response.json()
    except (ValueError, RecursionError):
        answer = None
    status = response.status_code
    if status >= 500:
        raise ProviderUnavailable(f"{provider} answered HTTP {status}",
                                  answer if isinstance(answer, dict) else {})
    if not isinstance(answer, dict):
        raise ProviderError(f"{provider} answered HTTP {status} without a JSON object")
    if status >= 400:
        reason = (answer.get("statusMessage") or answer.get("message")
                  or answer.get("reason") or answer.get("failedreason") or "")
        raise ProviderError(f"{provider} answered HTTP {status}: {reason}", answer)
    return answer
