"""A small fake SSLCommerz (API v4), standard library only, answering as SSLCommerz's
documentation says:

- ``POST /gwprocess/v4/api.php`` (a form with ``store_id``, ``store_passwd``,
  ``total_amount``, ``currency``, ``tran_id``, the success/fail/cancel/IPN URLs and the
  customer's fields): ``{"status": "SUCCESS", "sessionkey", "GatewayPageURL"}``, or
  ``{"status": "FAILED", "failedreason"}``;
- ``GET /validator/api/validationserverAPI.php?val_id&store_id&store_passwd&format=json``:
  ``status`` VALID the first time, VALIDATED after, INVALID_TRANSACTION for a val_id it
  never gave, with ``tran_id``, ``amount``, ``currency``, ``bank_tran_id``, ``risk_level``
  and ``risk_title``;
- ``GET /validator/api/merchantTransIDvalidationAPI.php``: with ``sessionkey`` the
  session's status (PENDING, VALID, FAILED, CANCELLED, with its ``val_id`` once paid);
  with ``bank_tran_id`` and ``refund_amount`` a refund (``status`` success, with a
  ``refund_ref_id``). ``APIConnect`` is ``DONE``, or ``INVALID_REQUEST`` for wrong store
  credentials.

The customer's side: ``GET /gw/<sessionkey>`` is the hosted page, whose links pay, fail or
cancel; SSLCommerz then sends the browser back with a form POST (an auto-submitting page)
to the success, fail or cancel URL. ``customer_pays`` does the same without a browser and
returns the URL and the fields it posts; ``ipn`` builds the IPN form and ``send_ipn`` posts
it to the session's ``ipn_url``.

Controls: those of every fake (``tests/payments/fake_provider.py``), and ``risky`` (paid
payments come with ``risk_level`` 1).
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import requests

from tests.payments.fake_provider import FakeProviderServer, QuietHandler

SESSION_PATH = "/gwprocess/v4/api.php"
VALIDATION_PATH = "/validator/api/validationserverAPI.php"
QUERY_PATH = "/validator/api/merchantTransIDvalidationAPI.php"
REQUIRED = ("total_amount", "currency", "tran_id", "success_url", "fail_url", "cancel_url",
            "cus_name", "cus_phone", "cus_email", "cus_add1", "cus_city", "cus_country",
            "shipping_method", "product_name", "product_category", "product_profile")


@dataclass
class FakeSession:
    sessionkey: str
    tran_id: str
    amount: str
    currency: str
    success_url: str
    fail_url: str
    cancel_url: str
    ipn_url: str
    status: str = "PENDING"  # PENDING, VALID, VALIDATED, FAILED, CANCELLED
    val_id: str = ""
    bank_tran_id: str = ""
    risk_level: str = "0"
    validations: int = 0
    refunds: list[dict] = field(default_factory=list)


class FakeSslcommerz(FakeProviderServer):
    def __init__(self, *, store_id: str = "fakeisp01", store_password: str = "fakeisp01@ssl"):
        super().__init__()
        self.store_id, self.store_password = store_id, store_password
        self.risky = False
        self.sessions: dict[str, FakeSession] = {}

    def handler(self):
        return _handler_for(self)

    def settings(self) -> dict:
        """The ``SSLCOMMERZ_*`` settings that point the service at this fake."""
        return {"SSLCOMMERZ_BASE_URL": self.root_url, "SSLCOMMERZ_STORE_ID": self.store_id,
                "SSLCOMMERZ_STORE_PASSWORD": self.store_password}

    # The customer's side ---------------------------------------------------

    def customer_pays(self, sessionkey: str, outcome: str = "success") -> tuple[str, dict]:
        """The customer pays (or fails, or cancels) on the hosted page: the URL SSLCommerz
        sends their browser to, and the fields it posts there."""
        session = self.sessions[sessionkey]
        with self._lock:
            if session.status == "PENDING":
                if outcome == "success":
                    number = self.next_number()
                    session.status = "VALID"
                    session.val_id = f"{datetime.date.today():%y%m%d}{number:06d}VAL"
                    session.bank_tran_id = f"{datetime.date.today():%y%m%d}{number:06d}BNK"
                    session.risk_level = "1" if self.risky else "0"
                else:
                    session.status = "FAILED" if outcome == "fail" else "CANCELLED"
        url = {"success": session.success_url, "fail": session.fail_url,
               "cancel": session.cancel_url}[outcome]
        return url, self.ipn(sessionkey)

    def ipn(self, sessionkey: str, **fields) -> dict:
        """The fields SSLCommerz posts to the IPN URL (and with the customer's return)."""
        session = self.sessions[sessionkey]
        status = "VALID" if session.status in ("VALID", "VALIDATED") else session.status
        form = {
            "status": status, "tran_date": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}",
            "tran_id": session.tran_id, "val_id": session.val_id,
            "amount": self.report_amount or session.amount, "store_amount": session.amount,
            "card_type": "BKASH-BKash", "card_no": "", "currency": session.currency,
            "bank_tran_id": session.bank_tran_id, "card_issuer": "BKash Mobile Banking",
            "card_brand": "MOBILEBANKING", "card_issuer_country": "Bangladesh",
            "currency_type": session.currency, "currency_amount": session.amount,
            "risk_level": session.risk_level, "risk_title": _risk_title(session.risk_level),
            **fields,
        }
        keys = sorted([*form, "store_passwd"])
        signed = {**form, "store_passwd": hashlib.md5(self.store_password.encode()).hexdigest()}
        form["verify_key"] = ",".join(keys)
        form["verify_sign"] = hashlib.md5("&".join(
            f"{key}={signed[key]}" for key in keys).encode()).hexdigest()
        return form

    def send_ipn(self, sessionkey: str, **fields) -> requests.Response:
        return requests.post(self.sessions[sessionkey].ipn_url, data=self.ipn(sessionkey, **fields),
                             timeout=30)

    # The API ---------------------------------------------------------------

    def answer(self, path: str, form: dict) -> tuple[int, dict]:
        failure = self.called(path)
        if failure is not None:
            return failure, {"status": "FAILED", "failedreason": "Internal Server Error"}
        credentials = (form.get("store_id"), form.get("store_passwd"))
        if credentials != (self.store_id, self.store_password):
            if path == SESSION_PATH:
                return 200, {"status": "FAILED",
                             "failedreason": "Store Credential Error Or Store is De-active"}
            return 200, {"APIConnect": "INVALID_REQUEST"}
        if path == SESSION_PATH:
            return 200, self._session(form)
        if path == VALIDATION_PATH:
            return 200, self._validate(form)
        if path == QUERY_PATH and form.get("sessionkey"):
            return 200, self._query(form)
        if path == QUERY_PATH and form.get("bank_tran_id"):
            return 200, self._refund(form)
        return 404, {"APIConnect": "INVALID_REQUEST"}

    def _session(self, form: dict) -> dict:
        missing = [name for name in REQUIRED if not form.get(name)]
        if missing:
            return {"status": "FAILED", "failedreason": f"Missing: {', '.join(missing)}"}
        try:
            if float(form["total_amount"]) < 10:
                raise ValueError
        except ValueError:
            return {"status": "FAILED", "failedreason": "Invalid amount"}
        key = f"{self.next_number():08d}F{form['tran_id']}"
        with self._lock:
            if any(s.tran_id == form["tran_id"] for s in self.sessions.values()):
                return {"status": "FAILED", "failedreason": "Duplicate tran_id"}
            self.sessions[key] = FakeSession(
                key, form["tran_id"], form["total_amount"], form["currency"],
                form["success_url"], form["fail_url"], form["cancel_url"],
                form.get("ipn_url", ""))
        return {"status": "SUCCESS", "failedreason": "", "sessionkey": key,
                "GatewayPageURL": f"{self.root_url}/gw/{key}", "storeBanner": "",
                "storeLogo": "", "desc": []}

    def _validated(self, session: FakeSession) -> dict:
        return {
            "status": session.status, "tran_date": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}",
            "tran_id": session.tran_id, "val_id": session.val_id,
            "amount": self.report_amount or session.amount, "store_amount": session.amount,
            "currency": session.currency, "bank_tran_id": session.bank_tran_id,
            "card_type": "BKASH-BKash", "currency_type": session.currency,
            "currency_amount": session.amount, "risk_level": session.risk_level,
            "risk_title": _risk_title(session.risk_level), "APIConnect": "DONE",
        }

    def _validate(self, form: dict) -> dict:
        found = [s for s in self.sessions.values() if s.val_id and s.val_id == form.get("val_id")]
        if not found:
            return {"status": "INVALID_TRANSACTION", "APIConnect": "DONE"}
        session = found[0]
        with self._lock:
            session.validations += 1
            answer = self._validated(session)
            if session.status == "VALID":
                session.status = "VALIDATED"
        return answer

    def _query(self, form: dict) -> dict:
        session = self.sessions.get(form["sessionkey"])
        if session is None:
            return {"status": "INVALID_REQUEST", "APIConnect": "DONE"}
        return {**self._validated(session), "sessionkey": session.sessionkey}

    def _refund(self, form: dict) -> dict:
        found = [s for s in self.sessions.values()
                 if s.bank_tran_id and s.bank_tran_id == form["bank_tran_id"]]
        try:
            amount = float(form.get("refund_amount", ""))
        except ValueError:
            amount = 0.0
        if not found or found[0].status not in ("VALID", "VALIDATED"):
            return {"APIConnect": "DONE", "status": "failed",
                    "errorReason": "Invalid bank transaction"}
        session = found[0]
        refunded = sum(float(r["amount"]) for r in session.refunds)
        if amount <= 0 or refunded + amount > float(session.amount) + 1e-9:
            return {"APIConnect": "DONE", "status": "failed",
                    "errorReason": "Refund amount exceeds the transaction amount"}
        refund = {"refund_ref_id": f"RFD{self.next_number():08d}", "amount": form["refund_amount"]}
        with self._lock:
            session.refunds.append(refund)
        return {"APIConnect": "DONE", "bank_tran_id": session.bank_tran_id,
                "trans_id": session.tran_id, "refund_ref_id": refund["refund_ref_id"],
                "status": "success", "errorReason": ""}


def _risk_title(level: str) -> str:
    return "Safe" if level == "0" else "Risky: card holder verification needed"


HOSTED_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>SSLCommerz</title>
</head><body><h1>SSLCommerz (fake)</h1><p id="amount">{amount} {currency}</p>
<a id="pay" href="/gw/{key}/success">Pay</a>
<a id="fail" href="/gw/{key}/fail">Fail</a>
<a id="cancel" href="/gw/{key}/cancel">Cancel</a></body></html>"""


def _auto_post(url: str, fields: dict) -> bytes:
    """What SSLCommerz's page does to send the customer back: a form that posts itself."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<!doctype html><html><body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(url)}">{inputs}'
            f'<noscript><button>Continue</button></noscript></form></body></html>').encode()


def _handler_for(fake: FakeSslcommerz):
    class Handler(QuietHandler):
        def _api(self, path: str, form: dict) -> None:
            if not fake.hold():
                return
            status, answer = fake.answer(path, form)
            self.send(status, json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path in (VALIDATION_PATH, QUERY_PATH):
                return self._api(parts.path, dict(parse_qsl(parts.query)))
            segments = parts.path.strip("/").split("/")
            if segments[0] == "gw" and len(segments) >= 2 and segments[1] in fake.sessions:
                session = fake.sessions[segments[1]]
                if len(segments) == 2:
                    page = HOSTED_PAGE.format(amount=session.amount, currency=session.currency,
                                              key=session.sessionkey)
                    return self.send(200, page.encode(), "text/html; charset=utf-8")
                if len(segments) == 3 and segments[2] in ("success", "fail", "cancel"):
                    url, fields = fake.customer_pays(session.sessionkey, segments[2])
                    return self.send(200, _auto_post(url, fields), "text/html; charset=utf-8")
            self.send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            form = dict(parse_qsl(self.body().decode(errors="replace")))
            if path != SESSION_PATH:
                return self.send(404, b"not found", "text/plain")
            self._api(path, form)

    return Handler
