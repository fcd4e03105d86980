"""bKash Tokenized Checkout (v1.2.0-beta): grant and refresh token, create, execute,
payment status, refund; and its Instant Payment Notification, an Amazon SNS message
whose signature is checked against the certificate SNS names.

The grant token is cached (``core.cache``) and refreshed before it expires. Nothing
here logs a credential or a token; answers kept for audit never hold one."""

from __future__ import annotations

import base64
import json
import re
import time
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from django.conf import settings

from billing.providers import (
    CONNECT_SECONDS,
    Checkout,
    Notice,
    Outcome,
    ProviderError,
    ProviderUnavailable,
    Refund,
    Status,
    call_json,
    money,
    unless_still_open,
)
from core.cache import cache_get, cache_set
from core.enums import OnlineProvider

SUCCESS = "0000"
TOKEN_KEY = "bkash:token"
# A token is refreshed when it has less than this left (bKash's last ~55 minutes).
TOKEN_MARGIN_SECONDS = 300
# bKash's codes for an execute that already happened: the status query then tells.
ALREADY_DONE = {"2062", "2117", "2116"}
STATUSES = {
    "Completed": Status.COMPLETED,
    "Initiated": Status.PENDING,
    "Authorized": Status.PENDING,
    "Pending Authorized": Status.PENDING,
    "Failed": Status.FAILED,
    "Cancelled": Status.CANCELLED,
    "Expired": Status.FAILED,
    "Declined": Status.FAILED,
}
# The fields of each SNS message type its signature covers, in order.
SNS_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
SNS_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class BkashProvider:
    code = OnlineProvider.BKASH

    @staticmethod
    def enabled() -> bool:
        return bool(settings.BKASH_BASE_URL)

    # HTTP ---------------------------------------------------------------------

    def _call(self, path: str, body: dict, *, headers: dict, timeout: float) -> dict:
        return call_json("bKash", "POST", f"{settings.BKASH_BASE_URL}{path}", json=body,
                         headers=headers, timeout=timeout)

    def _credentials(self) -> tuple[dict, dict]:
        headers = {"username": settings.BKASH_USERNAME, "password": settings.BKASH_PASSWORD}
        body = {"app_key": settings.BKASH_APP_KEY, "app_secret": settings.BKASH_APP_SECRET}
        return headers, body

    def _token(self, *, fresh: bool = False) -> str:
        cached = None if fresh else cache_get(TOKEN_KEY)
        now = time.time()
        if cached and cached["expires_at"] - now > TOKEN_MARGIN_SECONDS:
            return cached["id_token"]
        headers, body = self._credentials()
        answer = None
        if cached and cached.get("refresh_token"):
            try:
                answer = self._call("/tokenized/checkout/token/refresh",
                                    {**body, "refresh_token": cached["refresh_token"]},
                                    headers=headers, timeout=settings.BKASH_TIMEOUT_SECONDS)
            except ProviderError:
                answer = None
            if answer is not None and not answer.get("id_token"):
                answer = None
        if answer is None:
            answer = self._call("/tokenized/checkout/token/grant", body, headers=headers,
                                timeout=settings.BKASH_TIMEOUT_SECONDS)
        if not answer.get("id_token"):
            raise ProviderError(f"bKash refused the token grant: {answer.get('statusMessage', '')}",
                                {k: v for k, v in answer.items() if "token" not in k})
        lifetime = int(answer.get("expires_in") or 3600)
        cache_set(TOKEN_KEY, {"id_token": answer["id_token"],
                              "refresh_token": answer.get("refresh_token", ""),
                              "expires_at": now + lifetime}, timeout=lifetime)
        return answer["id_token"]

    def _checkout(self, path: str, body: dict) -> dict:
        """A call with the grant token; a token bKash no longer takes is replaced once."""
        for fresh in (False, True):
            headers = {"Authorization": self._token(fresh=fresh),
                       "X-APP-Key": settings.BKASH_APP_KEY}
            try:
                return self._call(path, body, headers=headers,
                                  timeout=settings.BKASH_TIMEOUT_SECONDS)
            except ProviderError as error:
                if fresh or isinstance(error, ProviderUnavailable) or "401" not in str(error):
                    raise
        raise AssertionError("unreachable")

    # The interface ------------------------------------------------------------

    def create(self, *, amount: Decimal, currency: str, invoice_number: str,
               payer_reference: str, payer_name: str, payer_phone: str,
               callback_url: str) -> Checkout:
        answer = self._checkout("/tokenized/checkout/create", {
            "mode": "0011", "payerReference": payer_reference, "callbackURL": callback_url,
            "amount": f"{amount:.2f}", "currency": currency, "intent": "sale",
            "merchantInvoiceNumber": invoice_number,
        })
        if answer.get("statusCode") != SUCCESS or not answer.get("paymentID") \
                or not answer.get("bkashURL"):
            raise ProviderError(f"bKash refused the payment: {answer.get('statusMessage', '')}",
                                answer)
        return Checkout(answer["paymentID"], answer["bkashURL"], answer)

    def confirm(self, *, provider_payment_id: str, callback: dict) -> Outcome:
        status = str(callback.get("status", "")).lower()
        if status != "success":
            # The customer failed or cancelled at bKash: nothing to execute, but only
            # bKash says it did not complete.
            ended = Status.CANCELLED if status == "cancel" else Status.FAILED
            return unless_still_open(self._status(provider_payment_id), ended)
        try:
            answer = self._execute(provider_payment_id)
        except ProviderUnavailable:
            return self.query(provider_payment_id=provider_payment_id)
        return self._executed(provider_payment_id, answer) \
            or Outcome(Status.FAILED, answer=answer)

    def query(self, *, provider_payment_id: str) -> Outcome:
        outcome = self._status(provider_payment_id)
        if outcome.answer.get("transactionStatus") != "Initiated":
            return outcome
        # The customer may have approved at bKash and lost their way back to us (a closed
        # tab, a dropped answer to execute): bKash takes the money only when the merchant
        # executes, and refuses to execute what the customer has not approved.
        return self._executed(provider_payment_id, self._execute(provider_payment_id)) \
            or outcome

    def _execute(self, provider_payment_id: str) -> dict:
        return self._checkout("/tokenized/checkout/execute", {"paymentID": provider_payment_id})

    def _executed(self, provider_payment_id: str, answer: dict) -> Outcome | None:
        """What execute's ``answer`` settles: its outcome, or the status query's when the
        payment was executed already; None when bKash refused to execute it."""
        if answer.get("statusCode") == SUCCESS:
            return self._outcome(answer)
        if answer.get("statusCode") in ALREADY_DONE:
            return self._status(provider_payment_id)
        return None

    def _status(self, provider_payment_id: str) -> Outcome:
        answer = self._checkout("/tokenized/checkout/payment/status",
                                {"paymentID": provider_payment_id})
        if answer.get("statusCode") != SUCCESS:
            raise ProviderError(f"bKash status query: {answer.get('statusMessage', '')}", answer)
        return self._outcome(answer)

    def refund(self, *, provider_payment_id: str, transaction_id: str, amount: Decimal,
               invoice_number: str, reason: str) -> Refund:
        answer = self._checkout("/tokenized/checkout/payment/refund", {
            "paymentID": provider_payment_id, "trxID": transaction_id,
            "amount": f"{amount:.2f}", "sku": invoice_number, "reason": reason[:255],
        })
        refunded = money(answer.get("amount"))
        if answer.get("statusCode") != SUCCESS or answer.get("transactionStatus") != "Completed" \
                or not answer.get("refundTrxID") or refunded != amount:
            raise ProviderError(f"bKash refused the refund: {answer.get('statusMessage', '')}",
                                answer)
        return Refund(answer["refundTrxID"], refunded, answer)

    @staticmethod
    def _outcome(answer: dict) -> Outcome:
        status = STATUSES.get(str(answer.get("transactionStatus", "")), Status.PENDING)
        if status == Status.COMPLETED and not answer.get("trxID"):
            status = Status.PENDING
        return Outcome(status, transaction_id=answer.get("trxID", ""),
                       amount=money(answer.get("amount")), currency=answer.get("currency", ""),
                       invoice_number=answer.get("merchantInvoiceNumber", ""), answer=answer)

    # The webhook --------------------------------------------------------------

    def notice(self, body: bytes) -> Notice:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
            raise ProviderError("the webhook is not JSON") from None
        if not isinstance(message, dict):
            raise ProviderError("the webhook is not an SNS message")
        verify_sns(message)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            url = str(message.get("SubscribeURL", ""))
            _check_sns_url(url, "SubscribeURL")
            try:
                requests.get(url, timeout=(CONNECT_SECONDS, 10)).raise_for_status()
            except requests.RequestException as error:
                raise ProviderUnavailable(f"SNS subscription not confirmed: {error}") from None
            return Notice(answer={"Type": kind, "TopicArn": message.get("TopicArn", "")})
        if kind != "Notification":
            return Notice(answer={"Type": kind})
        try:
            ipn = json.loads(message["Message"])
        except (ValueError, TypeError, RecursionError):
            raise ProviderError("the notification's Message is not JSON") from None
        if not isinstance(ipn, dict):
            raise ProviderError("the notification's Message is not an object")
        outcome = self._outcome({**ipn, "statusCode": SUCCESS})
        return Notice(invoice_number=str(ipn.get("merchantInvoiceNumber", "")),
                      provider_payment_id=str(ipn.get("paymentID", "")),
                      outcome=outcome, answer=ipn)


def _check_sns_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    local = host in LOCAL_HOSTS  # a provider simulator on this machine (tests)
    allowed = any(re.fullmatch(pattern, host) for pattern in settings.BKASH_SNS_CERT_HOSTS)
    if not allowed or (parts.scheme != "https" and not local):
        raise ProviderError(f"the webhook's {what} is not Amazon SNS's: {host or url!r}")


def _certificate(url: str):
    key = f"bkash:sns-cert:{url}"
    pem = cache_get(key)
    if pem is None:
        try:
            response = requests.get(url, timeout=(CONNECT_SECONDS, 10))
            response.raise_for_status()
        except requests.RequestException as error:
            raise ProviderUnavailable(f"the SNS certificate could not be fetched: {error}") \
                from None
        pem = response.text
        cache_set(key, pem, timeout=24 * 3600)
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise ProviderError("the SNS signing certificate is not a certificate") from None


def verify_sns(message: dict) -> None:
    """Raise ``ProviderError`` unless ``message`` is signed by the certificate it names,
    and that certificate is served from Amazon SNS (``BKASH_SNS_CERT_HOSTS``)."""
    kind = message.get("Type")
    fields = SNS_SIGNED.get(kind)
    algorithm = SNS_HASHES.get(str(message.get("SignatureVersion", "")))
    if fields is None or algorithm is None:
        raise ProviderError("the webhook is not a signed SNS message")
    url = str(message.get("SigningCertURL", ""))
    _check_sns_url(url, "SigningCertURL")
    signed = "".join(f"{name}\n{message[name]}\n" for name in fields
                     if name in message and (name != "Subject" or message[name] is not None))
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except ValueError:
        raise ProviderError("the webhook's signature is not base64") from None
    try:
        _certificate(url).public_key().verify(signature, signed.encode(), padding.PKCS1v15(),
                                              algorithm())
    except (InvalidSignature, TypeError, ValueError):
        raise ProviderError("the webhook's signature does not match") from None
