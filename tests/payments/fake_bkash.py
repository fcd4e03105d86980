"""A small fake bKash Tokenized Checkout server (v1.2.0-beta), standard library only.

It answers under ``/v1.2.0-beta/tokenized/checkout/`` the way bKash's documentation
says: ``token/grant`` and ``token/refresh`` (``username``/``password`` headers,
``app_key``/``app_secret`` in the body), then, with ``Authorization: <id_token>`` and
``X-APP-Key``, ``create`` (mode 0011: a ``paymentID`` and a ``bkashURL``), ``execute``,
``payment/status``, ``general/searchTransaction`` and ``payment/refund``. Every answer is
HTTP 200 with a ``statusCode`` ("0000" is success), except an unknown or expired token
(401). Amounts are strings.

The customer's side: ``GET /checkout/<paymentID>`` is bKash's page, with links that pay,
fail or cancel and send the browser to the merchant's ``callbackURL`` with
``?paymentID=...&status=success|failure|cancel``; ``customer_pays`` does the same
without a browser and returns that URL.

The Instant Payment Notification: an Amazon SNS message signed (SignatureVersion 1,
SHA1withRSA, or 2, SHA256) with a key whose self-signed certificate is served at
``/sns/cert.pem``; ``sns_notification`` builds one, ``send_webhook`` posts it, and
``subscription_confirmation`` builds the message whose ``SubscribeURL`` (``/sns/subscribe``)
it counts in ``subscribed``.

Controls: those of every fake (``tests/payments/fake_provider.py``: delay, hang, failures,
a different amount, the calls asked), and ``drop_execute_answer`` (execute does its work,
then closes the connection without answering: a lost answer), ``token_lifetime``
(``expires_in`` of a grant), ``expire_tokens`` (every token given out is refused from now
on).
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.payments.fake_provider import FakeProviderServer, QuietHandler

PREFIX = "/v1.2.0-beta/tokenized/checkout"
SUCCESS = "0000"
SNS_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
}
TOPIC = "arn:aws:sns:ap-southeast-1:000000000000:bpt_fake_merchant"


@dataclass
class FakePayment:
    payment_id: str
    amount: str
    currency: str
    invoice: str
    payer_reference: str
    callback_url: str
    status: str = "Initiated"  # Initiated, Authorized, Completed, Failed, Cancelled
    trx_id: str = ""
    executions: int = 0
    refunds: list[dict] = field(default_factory=list)

    @property
    def refunded(self) -> float:
        return sum(float(refund["amount"]) for refund in self.refunds)


def _self_signed() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.fake.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


class FakeBkash(FakeProviderServer):
    def __init__(self, *, app_key: str = "fake-app-key", app_secret: str = "fake-app-secret",
                 username: str = "01770000000", password: str = "fake-pass") -> None:
        super().__init__()
        self.app_key, self.app_secret = app_key, app_secret
        self.username, self.password = username, password
        self.drop_execute_answer = False
        self.token_lifetime = 3600
        self.payments: dict[str, FakePayment] = {}
        self.subscribed = 0
        self._tokens: set[str] = set()
        self._refresh_tokens: set[str] = set()
        self._key, self.certificate_pem = _self_signed()

    def handler(self):
        return _handler_for(self)

    @property
    def base_url(self) -> str:
        """What ``BKASH_BASE_URL`` is set to (bKash's own ends with the version too)."""
        return f"{self.root_url}/v1.2.0-beta"

    def settings(self) -> dict:
        """The ``BKASH_*`` settings that point the service at this fake."""
        return {
            "BKASH_BASE_URL": self.base_url, "BKASH_APP_KEY": self.app_key,
            "BKASH_APP_SECRET": self.app_secret, "BKASH_USERNAME": self.username,
            "BKASH_PASSWORD": self.password, "BKASH_SNS_CERT_HOSTS": [r"127\.0\.0\.1"],
        }

    # Controls --------------------------------------------------------------

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _authorize(self, payment_id: str, outcome: str) -> FakePayment:
        payment = self.payments[payment_id]
        with self._lock:
            if payment.status == "Initiated":
                payment.status = {"success": "Authorized", "failure": "Failed",
                                  "cancel": "Cancelled"}[outcome]
        return payment

    def customer_pays(self, payment_id: str, outcome: str = "success") -> str:
        """The customer enters their PIN (or fails, or cancels) on bKash's page; the URL
        bKash then sends their browser to."""
        payment = self._authorize(payment_id, outcome)
        return f"{payment.callback_url}?{urlencode({'paymentID': payment_id, 'status': outcome})}"

    def complete(self, payment_id: str) -> FakePayment:
        """bKash completes an authorized payment (as execute does): a trxID."""
        payment = self.payments[payment_id]
        with self._lock:
            payment.executions += 1
            if payment.status == "Authorized":
                payment.status = "Completed"
                payment.trx_id = f"FK{self.next_number():08d}"
        return payment

    # The IPN (Amazon SNS) ------------------------------------------------------

    def _signed(self, message: dict, version: str) -> dict:
        fields = SNS_SIGNED[message["Type"]]
        text = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self._key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode(),
                "SigningCertURL": f"{self.root_url}/sns/cert.pem"}

    def sns_notification(self, payment_id: str, *, version: str = "1", **ipn) -> dict:
        """The SNS message bKash publishes for a completed payment; ``ipn`` overrides fields
        of the notification (before signing)."""
        payment = self.payments[payment_id]
        body = {
            "dateTime": datetime.datetime.now().strftime("%Y%m%d%H%M%S"),
            "debitMSISDN": "8801770000001", "creditOrganizationName": "Fake ISP",
            "creditShortCode": "01770000000", "trxID": payment.trx_id,
            "transactionStatus": payment.status, "transactionType": "10002600",
            "amount": self.report_amount or payment.amount, "currency": payment.currency,
            "transactionReference": payment.payer_reference,
            "merchantInvoiceNumber": payment.invoice, "paymentID": payment.payment_id,
            **ipn,
        }
        return self._signed({
            "Type": "Notification", "MessageId": secrets.token_hex(16), "TopicArn": TOPIC,
            "Message": json.dumps(body), "Timestamp": _now_iso(),
        }, version)

    def subscription_confirmation(self) -> dict:
        return self._signed({
            "Type": "SubscriptionConfirmation", "MessageId": secrets.token_hex(16),
            "Token": secrets.token_hex(32), "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": f"{self.root_url}/sns/subscribe", "Timestamp": _now_iso(),
        }, "1")

    @staticmethod
    def send_webhook(url: str, message: dict) -> requests.Response:
        """POST an SNS message as SNS does (text/plain, JSON body)."""
        return requests.post(url, data=json.dumps(message), timeout=30, headers={
            "Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": message["Type"],
        })

    # The API -------------------------------------------------------------------

    def answer(self, path: str, headers, body: dict) -> tuple[int, dict]:
        failure = self.called(path)
        if failure is not None:
            return failure, {"statusCode": "9999", "statusMessage": "System Error"}
        if path in ("/token/grant", "/token/refresh"):
            return self._grant(path, headers, body)
        if headers.get("Authorization") not in self._tokens \
                or headers.get("X-APP-Key") != self.app_key:
            return 401, {"message": "Unauthorized"}
        handler = {
            "/create": self._create, "/execute": self._execute,
            "/payment/status": self._status, "/general/searchTransaction": self._search,
            "/payment/refund": self._refund,
        }.get(path)
        if handler is None:
            return 404, {"message": "Not Found"}
        return 200, handler(body)

    def _grant(self, path: str, headers, body: dict) -> tuple[int, dict]:
        if (headers.get("username"), headers.get("password")) != (self.username, self.password) \
                or (body.get("app_key"), body.get("app_secret")) != (self.app_key,
                                                                     self.app_secret):
            return 200, {"statusCode": "2079", "statusMessage": "Invalid app token"}
        with self._lock:
            if path == "/token/refresh":
                if body.get("refresh_token") not in self._refresh_tokens:
                    return 200, {"statusCode": "2079", "statusMessage": "Invalid refresh token"}
            token, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self._tokens.add(token)
            self._refresh_tokens.add(refresh)
        return 200, {"statusCode": SUCCESS, "statusMessage": "Successful", "id_token": token,
                     "token_type": "Bearer", "expires_in": self.token_lifetime,
                     "refresh_token": refresh}

    def _create(self, body: dict) -> dict:
        missing = [name for name in ("mode", "payerReference", "callbackURL", "amount",
                                     "currency", "intent") if not body.get(name)]
        if missing or body["mode"] != "0011" or body["currency"] != "BDT":
            return {"statusCode": "2065", "statusMessage": f"Mandatory field missing {missing}"}
        try:
            if float(body["amount"]) <= 0:
                raise ValueError
        except ValueError:
            return {"statusCode": "2007", "statusMessage": "Invalid Amount"}
        payment_id = f"TR0011{self.next_number():010d}"
        payment = FakePayment(payment_id, body["amount"], body["currency"],
                              body.get("merchantInvoiceNumber", ""), body["payerReference"],
                              body["callbackURL"])
        with self._lock:
            self.payments[payment_id] = payment
        return {
            "statusCode": SUCCESS, "statusMessage": "Successful", "paymentID": payment_id,
            "bkashURL": f"{self.root_url}/checkout/{payment_id}",
            "callbackURL": payment.callback_url,
            "successCallbackURL": f"{payment.callback_url}?paymentID={payment_id}&status=success",
            "failureCallbackURL": f"{payment.callback_url}?paymentID={payment_id}&status=failure",
            "cancelledCallbackURL": f"{payment.callback_url}?paymentID={payment_id}&status=cancel",
            "amount": payment.amount, "intent": "sale", "currency": payment.currency,
            "paymentCreateTime": _now_bkash(), "transactionStatus": "Initiated",
            "merchantInvoiceNumber": payment.invoice,
        }

    def _details(self, payment: FakePayment) -> dict:
        details = {
            "statusCode": SUCCESS, "statusMessage": "Successful",
            "paymentID": payment.payment_id, "mode": "0011",
            "paymentCreateTime": _now_bkash(), "amount": self.report_amount or payment.amount,
            "currency": payment.currency, "intent": "sale",
            "merchantInvoiceNumber": payment.invoice, "payerReference": payment.payer_reference,
            # bKash says Initiated until the merchant executes what the customer approved.
            "transactionStatus": "Initiated" if payment.status == "Authorized" else payment.status,
        }
        if payment.trx_id:
            details.update(trxID=payment.trx_id, customerMsisdn="01770000001",
                           paymentExecuteTime=_now_bkash())
        return details

    def _execute(self, body: dict) -> dict:
        payment = self.payments.get(body.get("paymentID", ""))
        if payment is None:
            return {"statusCode": "2056", "statusMessage": "Invalid Payment State"}
        if payment.status == "Completed":
            return {"statusCode": "2062", "statusMessage": "The payment has already been completed"}
        if payment.status != "Authorized":
            return {"statusCode": "2056", "statusMessage": "Invalid Payment State"}
        return self._details(self.complete(payment.payment_id))

    def _status(self, body: dict) -> dict:
        payment = self.payments.get(body.get("paymentID", ""))
        if payment is None:
            return {"statusCode": "2008", "statusMessage": "Invalid Payment ID"}
        return self._details(payment)

    def _search(self, body: dict) -> dict:
        found = [p for p in self.payments.values() if p.trx_id and p.trx_id == body.get("trxID")]
        if not found:
            return {"statusCode": "2117", "statusMessage": "Transaction not found"}
        details = self._details(found[0])
        return {**details, "transactionType": "Checkout", "completedTime": _now_bkash()}

    def _refund(self, body: dict) -> dict:
        payment = self.payments.get(body.get("paymentID", ""))
        if payment is None or payment.status != "Completed" or body.get("trxID") != payment.trx_id:
            return {"statusCode": "2071", "statusMessage": "Invalid transaction"}
        try:
            amount = float(body.get("amount", ""))
        except ValueError:
            return {"statusCode": "2007", "statusMessage": "Invalid Amount"}
        if amount <= 0 or payment.refunded + amount > float(payment.amount) + 1e-9:
            return {"statusCode": "2074", "statusMessage": "Refund amount exceeds the paid amount"}
        refund = {"refundTrxID": f"RF{self.next_number():08d}", "amount": body["amount"],
                  "sku": body.get("sku", ""), "reason": body.get("reason", "")}
        with self._lock:
            payment.refunds.append(refund)
        return {"statusCode": SUCCESS, "statusMessage": "Successful",
                "completedTime": _now_bkash(), "transactionStatus": "Completed",
                "originalTrxID": payment.trx_id, "refundTrxID": refund["refundTrxID"],
                "amount": refund["amount"], "currency": payment.currency, "charge": "0.00"}


def _now_bkash() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S:000 GMT+0600")


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


CHECKOUT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bKash Payment</title>
</head><body><h1>bKash (fake)</h1><p id="amount">{amount} {currency}</p>
<p>Invoice <span id="invoice">{invoice}</span></p>
<a id="pay" href="/checkout/{payment_id}/success">Confirm payment</a>
<a id="fail" href="/checkout/{payment_id}/failure">Wrong PIN</a>
<a id="cancel" href="/checkout/{payment_id}/cancel">Close</a></body></html>"""


def _handler_for(fake: FakeBkash):
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            if parts.path == "/sns/cert.pem":
                return self.send(200, fake.certificate_pem, "application/x-pem-file")
            if parts.path == "/sns/subscribe":
                with fake._lock:
                    fake.subscribed += 1
                return self.send(200, b"<ConfirmSubscriptionResponse/>", "text/xml")
            if segments[0] == "checkout" and len(segments) >= 2 \
                    and segments[1] in fake.payments:
                payment = fake.payments[segments[1]]
                if len(segments) == 2:
                    page = CHECKOUT_PAGE.format(amount=payment.amount, currency=payment.currency,
                                                invoice=payment.invoice,
                                                payment_id=payment.payment_id)
                    return self.send(200, page.encode(), "text/html; charset=utf-8")
                if len(segments) == 3 and segments[2] in ("success", "failure", "cancel"):
                    target = fake.customer_pays(payment.payment_id, segments[2])
                    return self.send(302, b"", "text/plain", {"Location": target})
            self.send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            raw = self.body()
            path = urlsplit(self.path).path
            if not path.startswith(PREFIX):
                return self.send(404, b'{"message": "Not Found"}', "application/json")
            if not fake.hold():
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self.send(400, b'{"message": "Bad Request"}', "application/json")
            status, answer = fake.answer(path[len(PREFIX):], self.headers, body)
            if path.endswith("/execute") and fake.drop_execute_answer:
                # The payment completed at bKash; the answer never reaches the merchant.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send(status, json.dumps(answer).encode(), "application/json")

    return Handler

