"""A small fake Nagad online checkout (API v-0.2.0), standard library and cryptography
only. It holds Nagad's key pair and the merchant's public key (``settings()`` hands the
service the merchant's private key and Nagad's public key), and answers as Nagad's
integration guide says, under ``/api/dfs``:

- ``POST /check-out/initialize/<merchantId>/<orderId>`` ``{dateTime, sensitiveData,
  signature}``: ``sensitiveData`` is the merchant's ``{merchantId, datetime, orderId,
  challenge}`` encrypted to Nagad's public key (RSA PKCS#1 v1.5), ``signature`` its
  SHA256withRSA signature by the merchant. The answer: ``{sensitiveData, signature}``,
  ``{paymentReferenceId, challenge, acceptDateTime}`` encrypted to the merchant and signed
  by Nagad; or ``{reason, message}`` with HTTP 400.
- ``POST /check-out/complete/<paymentReferenceId>`` with ``{merchantId, orderId,
  currencyCode, amount, challenge}`` sealed the same way, ``merchantCallbackURL`` and
  ``additionalMerchantInfo``: ``{"status": "Success", "callBackUrl"}``.
- ``GET /verify/payment/<paymentReferenceId>``: ``{merchantId, orderId, paymentRefId,
  amount, clientMobileNo, merchantMobileNo, orderDateTime, issuerPaymentDateTime,
  issuerPaymentRefNo, additionalMerchantInfo, status, statusCode}``; ``status`` Initiated
  until the customer pays, then Success (with ``issuerPaymentRefNo``), Aborted or Failed.

The customer's side: ``GET /checkout/<paymentReferenceId>`` is Nagad's page, whose links
pay, fail or cancel and send the browser to ``merchantCallbackURL?merchant=…&order_id=…
&payment_ref_id=…&status=Success|Aborted|Failed&status_code=…&message=…``;
``customer_pays`` does the same without a browser and returns that URL.

Controls: those of every fake (``tests/payments/fake_provider.py``), and ``forge_answers``
(Nagad's answers signed with a key that is not Nagad's).
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.payments.fake_provider import FakeProviderServer, QuietHandler

API = "/api/dfs"
CALLBACK_STATUS = {"success": ("Success", "00_0000_000"), "fail": ("Failed", "00_1111_111"),
                   "cancel": ("Aborted", "00_1114_000")}


@dataclass
class FakeNagadPayment:
    reference: str
    order_id: str
    challenge: str
    amount: str = ""
    callback_url: str = ""
    status: str = "Initiated"  # Initiated, Ready (completed by the merchant), Success, ...
    issuer_ref: str = ""
    verifications: int = 0


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _bare(key) -> str:
    """A key as Nagad hands keys out: base64 DER, no PEM lines."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    else:
        der = key.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


class FakeNagad(FakeProviderServer):
    def __init__(self, *, merchant_id: str = "683002007104225") -> None:
        super().__init__()
        self.merchant_id = merchant_id
        self.forge_answers = False
        self.payments: dict[str, FakeNagadPayment] = {}
        self._nagad_key, self._merchant_key, self._forger_key = _key(), _key(), _key()

    def handler(self):
        return _handler_for(self)

    def settings(self) -> dict:
        """The ``NAGAD_*`` settings that point the service at this fake (the merchant's key
        as PEM, Nagad's bare, as merchants get them)."""
        pem = self._merchant_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode()
        return {"NAGAD_BASE_URL": self.root_url, "NAGAD_MERCHANT_ID": self.merchant_id,
                "NAGAD_MERCHANT_PRIVATE_KEY": pem,
                "NAGAD_PUBLIC_KEY": _bare(self._nagad_key.public_key())}

    # The customer's side ---------------------------------------------------

    def customer_pays(self, reference: str, outcome: str = "success") -> str:
        """The customer pays (or fails, or cancels) on Nagad's page: the URL Nagad then
        sends their browser to."""
        payment = self.payments[reference]
        status, code = CALLBACK_STATUS[outcome]
        with self._lock:
            if payment.status == "Ready":
                payment.status = status
                if status == "Success":
                    payment.issuer_ref = f"7{self.next_number():09d}"
        return f"{payment.callback_url}?" + urlencode({
            "merchant": self.merchant_id, "order_id": payment.order_id,
            "payment_ref_id": reference, "status": status, "status_code": code,
            "message": status, "payment_dt": f"{datetime.datetime.now():%Y%m%d%H%M%S}",
            "issuer_payment_ref": payment.issuer_ref,
        })

    # Sealing ---------------------------------------------------------------

    def _open(self, body: dict) -> dict | None:
        """The merchant's sealed fields, or None when they are not the merchant's."""
        try:
            text = self._nagad_key.decrypt(base64.b64decode(body["sensitiveData"]),
                                           padding.PKCS1v15())
            self._merchant_key.public_key().verify(base64.b64decode(body["signature"]), text,
                                                   padding.PKCS1v15(), hashes.SHA256())
            fields = json.loads(text)
        except (KeyError, TypeError, ValueError, InvalidSignature):
            return None
        return fields if isinstance(fields, dict) else None

    def _seal(self, fields: dict) -> dict:
        text = json.dumps(fields).encode()
        signer = self._forger_key if self.forge_answers else self._nagad_key
        return {
            "sensitiveData": base64.b64encode(
                self._merchant_key.public_key().encrypt(text, padding.PKCS1v15())).decode(),
            "signature": base64.b64encode(
                signer.sign(text, padding.PKCS1v15(), hashes.SHA256())).decode(),
        }

    # The API ---------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        failure = self.called(path)
        if failure is not None:
            return failure, {"reason": "5000", "message": "Internal Server Error"}
        parts = path.strip("/").split("/")
        if method == "POST" and parts[:2] == ["check-out", "initialize"] and len(parts) == 4:
            return self._initialize(parts[2], parts[3], body)
        if method == "POST" and parts[:2] == ["check-out", "complete"] and len(parts) == 3:
            return self._complete(parts[2], body)
        if method == "GET" and parts[:2] == ["verify", "payment"] and len(parts) == 3:
            return self._verify(parts[2])
        return 404, {"reason": "404", "message": "Not Found"}

    def _initialize(self, merchant_id: str, order_id: str, body: dict) -> tuple[int, dict]:
        fields = self._open(body)
        if fields is None or merchant_id != self.merchant_id \
                or fields.get("merchantId") != merchant_id or fields.get("orderId") != order_id:
            return 400, {"reason": "4001", "message": "Invalid signature or sensitive data"}
        if any(p.order_id == order_id for p in self.payments.values()):
            return 400, {"reason": "4015", "message": "Duplicate order id"}
        reference = f"MDA{self.next_number():010d}{secrets.token_hex(4).upper()}"
        payment = FakeNagadPayment(reference, order_id, secrets.token_hex(20))
        with self._lock:
            self.payments[reference] = payment
        return 200, self._seal({"paymentReferenceId": reference, "challenge": payment.challenge,
                                "acceptDateTime": f"{datetime.datetime.now():%Y%m%d%H%M%S}"})

    def _complete(self, reference: str, body: dict) -> tuple[int, dict]:
        payment = self.payments.get(reference)
        fields = self._open(body)
        if payment is None or fields is None or fields.get("challenge") != payment.challenge \
                or fields.get("orderId") != payment.order_id \
                or fields.get("merchantId") != self.merchant_id \
                or fields.get("currencyCode") != "050" or not body.get("merchantCallbackURL"):
            return 400, {"reason": "4002", "message": "Invalid request"}
        with self._lock:
            payment.amount = str(fields.get("amount", ""))
            payment.callback_url = body["merchantCallbackURL"]
            payment.status = "Ready"
        return 200, {"status": "Success", "callBackUrl": f"{self.root_url}/checkout/{reference}"}

    def _verify(self, reference: str) -> tuple[int, dict]:
        payment = self.payments.get(reference)
        if payment is None:
            return 400, {"reason": "4004", "message": "Payment reference not found"}
        with self._lock:
            payment.verifications += 1
        status = "Initiated" if payment.status == "Ready" else payment.status
        return 200, {
            "merchantId": self.merchant_id, "orderId": payment.order_id,
            "paymentRefId": reference, "amount": self.report_amount or payment.amount,
            "clientMobileNo": "016****0001", "merchantMobileNo": "01711428036",
            "orderDateTime": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}",
            "issuerPaymentDateTime": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}",
            "issuerPaymentRefNo": payment.issuer_ref, "additionalMerchantInfo": None,
            "status": status, "statusCode": "000" if status == "Success" else "001",
            "cancelIssuerDateTime": None, "cancelIssuerRefNo": None,
        }


CHECKOUT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Nagad</title>
</head><body><h1>Nagad (fake)</h1><p id="amount">{amount} BDT</p>
<a id="pay" href="/checkout/{reference}/success">Pay</a>
<a id="fail" href="/checkout/{reference}/fail">Wrong PIN</a>
<a id="cancel" href="/checkout/{reference}/cancel">Cancel</a></body></html>"""


def _handler_for(fake: FakeNagad):
    class Handler(QuietHandler):
        def _api(self, method: str, body: dict) -> None:
            if not fake.hold():
                return
            path = urlsplit(self.path).path[len(API):]
            status, answer = fake.answer(method, path, body)
            self.send(status, json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith(f"{API}/"):
                return self._api("GET", {})
            segments = path.strip("/").split("/")
            if segments[0] == "checkout" and len(segments) >= 2 \
                    and segments[1] in fake.payments:
                payment = fake.payments[segments[1]]
                if len(segments) == 2:
                    page = CHECKOUT_PAGE.format(amount=payment.amount, reference=payment.reference)
                    return self.send(200, page.encode(), "text/html; charset=utf-8")
                if len(segments) == 3 and segments[2] in CALLBACK_STATUS:
                    target = fake.customer_pays(payment.reference, segments[2])
                    return self.send(302, b"", "text/plain", {"Location": target})
            self.send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            if not urlsplit(self.path).path.startswith(f"{API}/"):
                return self.send(404, b"not found", "text/plain")
            try:
                body = json.loads(self.body() or b"{}")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return self.send(400, b'{"message": "Bad Request"}', "application/json")
            self._api("POST", body)

    return Handler
