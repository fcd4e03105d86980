"""Nagad's online checkout (API v-0.2.0): initialize and complete, each with its
sensitive fields encrypted to Nagad's public key and signed with the merchant's private
key (RSA, PKCS#1 v1.5; SHA256withRSA), Nagad's answers decrypted and their signatures
checked; then nothing is credited before the verify call by payment reference says
Success, for our merchant, order and amount.

The customer's return carries no trust (it only makes us call verify). Nagad has no
refund API for this checkout and sends no webhook: refunds are refused clearly, and a
customer who never comes back is found by the sweep's verify."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import datetime
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

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

API = "/api/dfs"
# Nagad's order times are Dhaka's wall clock.
DHAKA = ZoneInfo("Asia/Dhaka")
TAKA = "050"  # ISO 4217's number for BDT, as Nagad wants it
STATUSES = {
    "Success": Status.COMPLETED,
    "Aborted": Status.CANCELLED,
    "Cancelled": Status.CANCELLED,
    "Failed": Status.FAILED,
    "Expired": Status.FAILED,
    "Declined": Status.FAILED,
}
RETURN_ENDED = {"aborted": Status.CANCELLED, "cancelled": Status.CANCELLED,
                "failed": Status.FAILED}


def _der(key_text: str) -> bytes:
    """A key from the environment, PEM or bare base64 (with or without "\\n" escapes)."""
    lines = key_text.replace("\\n", "\n").strip().splitlines()
    body = "".join(line.strip() for line in lines if not line.startswith("-----"))
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("a Nagad key setting is not a key") from None


# What loading a key that is not an unencrypted RSA key raises.
KEY_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


def _merchant_key() -> rsa.RSAPrivateKey:
    return _rsa_key(settings.NAGAD_MERCHANT_PRIVATE_KEY, "NAGAD_MERCHANT_PRIVATE_KEY",
                    rsa.RSAPrivateKey)


def _nagad_key() -> rsa.RSAPublicKey:
    return _rsa_key(settings.NAGAD_PUBLIC_KEY, "NAGAD_PUBLIC_KEY", rsa.RSAPublicKey)


@cache
def _rsa_key(key_text: str, setting: str, kind: type):
    """The RSA key (``kind``: private or public) a setting holds."""
    try:
        der = _der(key_text)
        key = (serialization.load_der_private_key(der, password=None)
               if kind is rsa.RSAPrivateKey else serialization.load_der_public_key(der))
    except KEY_ERRORS:
        key = None
    if not isinstance(key, kind):
        wanted = "private key (unencrypted)" if kind is rsa.RSAPrivateKey else "public key"
        raise ProviderError(f"{setting} is not an RSA {wanted}")
    return key


class NagadProvider:
    code = OnlineProvider.NAGAD

    @staticmethod
    def enabled() -> bool:
        return bool(settings.NAGAD_BASE_URL)

    # Signing and encryption ---------------------------------------------------

    def _sealed(self, fields: dict) -> dict:
        """``sensitiveData`` (encrypted to Nagad) and its ``signature`` (by the merchant)."""
        text = json.dumps(fields, separators=(",", ":")).encode()
        encrypted = _nagad_key().encrypt(text, padding.PKCS1v15())
        signature = _merchant_key().sign(
            text, padding.PKCS1v15(), hashes.SHA256())
        return {"sensitiveData": base64.b64encode(encrypted).decode(),
                "signature": base64.b64encode(signature).decode()}

    def _opened(self, answer: dict) -> dict:
        """Nagad's ``sensitiveData`` decrypted, once its signature is Nagad's."""
        try:
            text = _merchant_key().decrypt(
                base64.b64decode(str(answer.get("sensitiveData", "")), validate=True),
                padding.PKCS1v15())
            _nagad_key().verify(
                base64.b64decode(str(answer.get("signature", "")), validate=True), text,
                padding.PKCS1v15(), hashes.SHA256())
            fields = json.loads(text)
        except (InvalidSignature, ValueError, binascii.Error):
            raise ProviderError("Nagad's answer is not signed by Nagad, or not readable",
                                _without_secrets(answer)) from None
        if not isinstance(fields, dict):
            raise ProviderError("Nagad's answer holds no fields", _without_secrets(answer))
        return fields

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        return call_json("Nagad", method, f"{settings.NAGAD_BASE_URL}{API}{path}", json=body,
                         timeout=settings.NAGAD_TIMEOUT_SECONDS, headers={
                             "X-KM-Api-Version": "v-0.2.0", "X-KM-Client-Type": "PC_WEB",
                             "X-KM-IP-V4": settings.NAGAD_CLIENT_IP})

    # The interface ------------------------------------------------------------

    def create(self, *, amount: Decimal, currency: str, invoice_number: str,
               payer_reference: str, payer_name: str, payer_phone: str,
               callback_url: str) -> Checkout:
        if currency != "BDT":
            raise ProviderError(f"Nagad takes BDT only, not {currency}")
        merchant = settings.NAGAD_MERCHANT_ID
        now = datetime.now(DHAKA).strftime("%Y%m%d%H%M%S")
        body = {"dateTime": now, **self._sealed({
            "merchantId": merchant, "datetime": now, "orderId": invoice_number,
            "challenge": secrets.token_hex(20)})}
        if settings.NAGAD_MERCHANT_NUMBER:
            body["accountNumber"] = settings.NAGAD_MERCHANT_NUMBER
        initialized = self._call("POST", f"/check-out/initialize/{merchant}/{invoice_number}",
                                 body)
        if not initialized.get("sensitiveData"):
            raise ProviderError(f"Nagad refused the payment: {initialized.get('message', '')}",
                                initialized)
        opened = self._opened(initialized)
        reference, challenge = opened.get("paymentReferenceId"), opened.get("challenge")
        if not reference or not challenge:
            raise ProviderError("Nagad's initialize answer has no payment reference")
        completed = self._call("POST", f"/check-out/complete/{reference}", {
            **self._sealed({"merchantId": merchant, "orderId": invoice_number,
                            "currencyCode": TAKA, "amount": f"{amount:.2f}",
                            "challenge": challenge}),
            "merchantCallbackURL": callback_url,
            "additionalMerchantInfo": {"invoice": invoice_number},
        })
        if completed.get("status") != "Success" or not completed.get("callBackUrl"):
            raise ProviderError(f"Nagad refused the payment: {completed.get('message', '')}",
                                completed)
        return Checkout(str(reference), completed["callBackUrl"],
                        {"paymentReferenceId": reference, **completed})

    def confirm(self, *, provider_payment_id: str, callback: dict) -> Outcome:
        ended = RETURN_ENDED.get(str(callback.get("status", "")).lower())
        return unless_still_open(self.query(provider_payment_id=provider_payment_id), ended)

    def query(self, *, provider_payment_id: str) -> Outcome:
        answer = self._call("GET", f"/verify/payment/{provider_payment_id}")
        if answer.get("merchantId") != settings.NAGAD_MERCHANT_ID \
                or answer.get("paymentRefId") != provider_payment_id:
            raise ProviderError("Nagad's verify answer is for another merchant or payment",
                                answer)
        status = STATUSES.get(str(answer.get("status", "")), Status.PENDING)
        if status == Status.COMPLETED and not answer.get("issuerPaymentRefNo"):
            status = Status.PENDING
        return Outcome(status, transaction_id=str(answer.get("issuerPaymentRefNo") or ""),
                       amount=money(answer.get("amount")), currency="BDT",
                       invoice_number=str(answer.get("orderId", "")), answer=answer)

    def refund(self, *, provider_payment_id: str, transaction_id: str, amount: Decimal,
               invoice_number: str, reason: str) -> Refund:
        raise ProviderError("Nagad's checkout has no refund API: refund it in Nagad's "
                            "merchant portal")

    def notice(self, body: bytes) -> Notice:
        raise ProviderError("Nagad sends no webhooks")


def _without_secrets(answer: dict) -> dict:
    """An answer kept for audit, without its encrypted blob (it is for us alone)."""
    return {key: value for key, value in answer.items() if key != "sensitiveData"}
