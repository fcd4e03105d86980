"""Payment providers behind one small interface. Each is switched on by its own settings
(its base URL set) and answers in the same few types; ``billing.online_payments`` holds
the rules and never speaks a provider's protocol itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from core.enums import OnlineProvider


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
               payer_reference: str, callback_url: str) -> Checkout: ...

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
        from billing.providers.bkash import BkashProvider

        return BkashProvider() if BkashProvider.enabled() else None
    return None


def enabled_providers() -> list[str]:
    return [code for code in OnlineProvider.values if provider_for(code) is not None]
