"""A customer's own pay link (``/pay/<token>``): signed with SECRET_KEY, expiring after
``PAY_LINK_DAYS``, sent in the bill and reminder notices. No login: the link is the key."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core import signing

from billing.models import Customer

SALT = "billing.pay-link"


def pay_token(customer: Customer) -> str:
    return signing.TimestampSigner(salt=SALT).sign(customer.uid.hex)


def pay_link(customer: Customer) -> str:
    return f"{settings.PUBLIC_BASE_URL}/pay/{pay_token(customer)}"


def customer_of_pay_token(token: str) -> Customer | None:
    """The customer a pay link names; None when it is forged or expired."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(
            token, max_age=timedelta(days=settings.PAY_LINK_DAYS))
        uid = uuid.UUID(hex=value)
    except (signing.BadSignature, ValueError):
        return None
    return Customer.objects.select_related("package").filter(uid=uid).first()
