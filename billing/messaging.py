"""Sending a text to a customer: email through Django's email backend, SMS through a
small backend interface (``SMS_BACKEND``: ``logging`` by default, or ``http``)."""

import logging
from typing import Protocol

import requests
from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The message was not accepted; it will be tried again."""


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
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            raise DeliveryError(f"SMS gateway unreachable: {error}") from error
        if response.status_code >= 300:
            raise DeliveryError(f"SMS gateway answered {response.status_code}")


def sms_backend() -> SmsBackend:
    if settings.SMS_BACKEND == "http":
        return HttpSmsBackend(
            url=settings.SMS_HTTP_URL,
            token=settings.SMS_HTTP_TOKEN,
            sender=settings.SMS_SENDER_ID,
            timeout=settings.SMS_HTTP_TIMEOUT_SECONDS,
        )
    return LoggingSmsBackend()


def send_email(*, to: str, subject: str, text: str) -> None:
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
    except Exception as error:  # any backend's failure: SMTP, network, …
        raise DeliveryError(f"email not sent: {error}") from error
