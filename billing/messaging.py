"""Sending a text to a customer: email through Django's email backend, SMS through a
small backend interface (``SMS_BACKEND``: ``logging`` by default, or ``http``).

Every send carries the notice's key: the SMS gateway's idempotency key, the e-mail's
Message-ID, so a repeat after a crash can be recognised by whoever receives it."""

import logging
import re
from typing import Protocol

import requests
from django.conf import settings
from django.core.mail import EmailMessage

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The message was not accepted; it will be tried again."""


class PermanentDeliveryError(DeliveryError):
    """The message was refused for good (a gateway 4xx): trying again cannot help."""


class SmsBackend(Protocol):
    def send(self, *, to: str, text: str, idempotency_key: str) -> None: ...


class LoggingSmsBackend:
    def send(self, *, to: str, text: str, idempotency_key: str) -> None:
        logger.info("sms to %s [%s]: %s", to, idempotency_key, text)


class HttpSmsBackend:
    """A JSON POST to an SMS gateway; the idempotency key lets a gateway that honours
    it drop a repeat."""

    def __init__(self, *, url: str, token: str, sender: str, timeout: float):
        self.url, self.token, self.sender, self.timeout = url, token, sender, timeout

    def send(self, *, to: str, text: str, idempotency_key: str) -> None:
        try:
            response = requests.post(
                self.url,
                json={"to": to, "message": text, "sender": self.sender},
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Idempotency-Key": idempotency_key,
                },
                # Connect and read each bounded: the claim timeout is checked against both.
                timeout=(self.timeout, self.timeout),
            )
        except requests.RequestException as error:
            raise DeliveryError(f"SMS gateway unreachable: {error}") from error
        status = response.status_code
        if 400 <= status < 500 and status != 429:  # 429: too many requests, later is fine
            raise PermanentDeliveryError(f"SMS gateway answered {status}")
        if status >= 300:
            raise DeliveryError(f"SMS gateway answered {status}")


def sms_backend() -> SmsBackend:
    if settings.SMS_BACKEND == "http":
        return HttpSmsBackend(
            url=settings.SMS_HTTP_URL,
            token=settings.SMS_HTTP_TOKEN,
            sender=settings.SMS_SENDER_ID,
            timeout=settings.SMS_HTTP_TIMEOUT_SECONDS,
        )
    return LoggingSmsBackend()


def message_id(key: str) -> str:
    """The RFC 5322 Message-ID of the notice ``key``: the same on every retry. A ``:``
    becomes ``.``; any other character outside letters, digits, ``-`` and ``_`` becomes
    ``=XX`` (hex), so two keys never share an id."""
    local = re.sub(r"[^A-Za-z0-9_:-]", lambda m: "".join(
        f"={byte:02X}" for byte in m.group().encode()), key).replace(":", ".")
    return f"<{local}@{settings.NOTIFICATION_MESSAGE_ID_DOMAIN}>"


def send_email(*, to: str, subject: str, text: str, key: str) -> None:
    message = EmailMessage(subject, text, settings.DEFAULT_FROM_EMAIL, [to],
                           headers={"Message-ID": message_id(key)})
    try:
        message.send(fail_silently=False)
    except Exception as error:  # any backend's failure: SMTP, network, …
        raise DeliveryError(f"email not sent: {error}") from error
