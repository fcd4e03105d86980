"""SSLCommerz (API v4): a session per payment, the customer pays on SSLCommerz's hosted
page, and nothing counts before the Order Validation API says VALID or VALIDATED for a
``val_id``, with its amount, currency, transaction id and risk level checked.

The customer's return (a POST to our URL) and the IPN carry no trust: the return only
makes us ask SSLCommerz about the session (the Transaction Query API by ``sessionkey``,
then the Validation API on the ``val_id`` it names); the IPN's ``val_id`` is validated the
same way. Refunds go through the Refund API on the bank transaction id.

SSLCommerz takes the store password in the query string of its GET APIs: nothing here
logs a URL (and ``core.settings`` keeps urllib3's request lines out of the logs)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

from django.conf import settings
from django.urls import reverse

from billing.providers import (
    Checkout,
    Notice,
    Outcome,
    ProviderError,
    Refund,
    Status,
    call_json,
    money,
    unless_still_open,
)
from core.enums import OnlineProvider

SESSION_PATH = "/gwprocess/v4/api.php"
VALIDATION_PATH = "/validator/api/validationserverAPI.php"
QUERY_PATH = "/validator/api/merchantTransIDvalidationAPI.php"
PAID = {"VALID", "VALIDATED"}
STATUSES = {
    "VALID": Status.COMPLETED,
    "VALIDATED": Status.COMPLETED,
    "PENDING": Status.PENDING,
    "UNATTEMPTED": Status.PENDING,
    "FAILED": Status.FAILED,
    "EXPIRED": Status.FAILED,
    "CANCELLED": Status.CANCELLED,
}
# What the customer's return says happened (its ``status``), used only when SSLCommerz
# itself still has the session open: the customer left its page, so it will not finish.
RETURN_ENDED = {"FAILED": Status.FAILED, "CANCELLED": Status.CANCELLED}


class SslcommerzProvider:
    code = OnlineProvider.SSLCOMMERZ

    @staticmethod
    def enabled() -> bool:
        return bool(settings.SSLCOMMERZ_BASE_URL)

    def _store(self) -> dict:
        return {"store_id": settings.SSLCOMMERZ_STORE_ID,
                "store_passwd": settings.SSLCOMMERZ_STORE_PASSWORD}

    def _get(self, path: str, params: dict) -> dict:
        answer = call_json("SSLCommerz", "GET", f"{settings.SSLCOMMERZ_BASE_URL}{path}",
                           params={**params, **self._store(), "v": "1", "format": "json"},
                           timeout=settings.SSLCOMMERZ_TIMEOUT_SECONDS)
        if answer.get("APIConnect", "DONE") != "DONE":
            raise ProviderError(f"SSLCommerz refused the call: {answer.get('APIConnect')}",
                                answer)
        return answer

    # The interface ------------------------------------------------------------

    def create(self, *, amount: Decimal, currency: str, invoice_number: str,
               payer_reference: str, payer_name: str, payer_phone: str,
               callback_url: str) -> Checkout:
        answer = call_json("SSLCommerz", "POST", f"{settings.SSLCOMMERZ_BASE_URL}{SESSION_PATH}",
                           timeout=settings.SSLCOMMERZ_TIMEOUT_SECONDS, data={
            **self._store(), "total_amount": f"{amount:.2f}", "currency": currency,
            "tran_id": invoice_number, "success_url": callback_url, "fail_url": callback_url,
            "cancel_url": callback_url,
            "ipn_url": f"{settings.PUBLIC_BASE_URL}{reverse('pay-webhook-sslcommerz')}",
            "cus_name": payer_name or "Customer", "cus_phone": payer_phone or "N/A",
            "cus_email": "customer@example.invalid", "cus_add1": "N/A", "cus_city": "N/A",
            "cus_country": "Bangladesh", "shipping_method": "NO",
            "product_name": "Internet bill", "product_category": "Internet",
            "product_profile": "non-physical-goods", "value_a": payer_reference,
        })
        if answer.get("status") != "SUCCESS" or not answer.get("sessionkey") \
                or not answer.get("GatewayPageURL"):
            raise ProviderError(f"SSLCommerz refused the session: "
                                f"{answer.get('failedreason', '')}", answer)
        return Checkout(answer["sessionkey"], answer["GatewayPageURL"], answer)

    def confirm(self, *, provider_payment_id: str, callback: dict) -> Outcome:
        ended = RETURN_ENDED.get(str(callback.get("status", "")).upper())
        return unless_still_open(self.query(provider_payment_id=provider_payment_id), ended)

    def query(self, *, provider_payment_id: str) -> Outcome:
        answer = self._get(QUERY_PATH, {"sessionkey": provider_payment_id})
        status = str(answer.get("status", "")).upper()
        if status in PAID and answer.get("val_id"):
            # Only the Validation API's word settles a payment (SSLCommerz's rule).
            return self.validate(str(answer["val_id"]))
        if status in PAID:
            status = "PENDING"
        return Outcome(STATUSES.get(status, Status.PENDING), answer=answer)

    def validate(self, val_id: str) -> Outcome:
        answer = self._get(VALIDATION_PATH, {"val_id": val_id})
        status = str(answer.get("status", "")).upper()
        if status not in STATUSES:
            raise ProviderError(f"SSLCommerz does not validate {val_id!r}: {status}", answer)
        outcome = STATUSES[status]
        if outcome == Status.COMPLETED and not answer.get("bank_tran_id"):
            outcome = Status.PENDING
        hold = ""
        if str(answer.get("risk_level", "0")) != "0":
            hold = f"SSLCommerz marks it risky ({answer.get('risk_title') or 'risk level 1'})"
        return Outcome(outcome, transaction_id=str(answer.get("bank_tran_id", "")),
                       amount=money(answer.get("amount")),
                       currency=str(answer.get("currency", "")),
                       invoice_number=str(answer.get("tran_id", "")), answer=answer,
                       hold=hold)

    def refund(self, *, provider_payment_id: str, transaction_id: str, amount: Decimal,
               invoice_number: str, reason: str) -> Refund:
        answer = self._get(QUERY_PATH, {
            "bank_tran_id": transaction_id, "refund_amount": f"{amount:.2f}",
            "refund_remarks": reason[:255],
        })
        # "processing": SSLCommerz took the refund and pays it out later; asking again
        # would refund twice.
        if answer.get("status") not in ("success", "processing") \
                or not answer.get("refund_ref_id"):
            raise ProviderError(f"SSLCommerz refused the refund: "
                                f"{answer.get('errorReason', '')}", answer)
        return Refund(str(answer["refund_ref_id"]), amount, answer)

    def notice(self, body: bytes) -> Notice:
        """The IPN (a form POST): its ``val_id`` validated; nothing else of it is used."""
        try:
            fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ProviderError("the IPN is not a form") from None
        invoice = fields.get("tran_id", "")
        if not invoice:
            raise ProviderError("the IPN names no transaction")
        if not fields.get("val_id"):
            # A failed or cancelled payment has no val_id: the sweep asks SSLCommerz.
            return Notice(invoice_number=invoice, outcome=Outcome(Status.PENDING))
        outcome = self.validate(fields["val_id"])
        # Which payment it is comes from SSLCommerz's answer alone, never the IPN's fields.
        return Notice(invoice_number=outcome.invoice_number, outcome=outcome,
                      answer=outcome.answer)
