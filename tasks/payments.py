"""Online payments: asking a provider about payments that went quiet (no callback came,
or execute gave no answer), and the sweep that finds them. The payment's state lives in
its row; a duplicate delivery asks the provider again and changes nothing."""

from celery import shared_task

from billing import online_payments
from tasks.base import ROW_STATE


@shared_task(name="payments.online_payment_check", **ROW_STATE)
def online_payment_check(online_payment_id: int) -> None:
    online_payments.online_payment_check(online_payment_id=online_payment_id)


@shared_task(name="payments.online_payments_sweep", **ROW_STATE)
def online_payments_sweep() -> int:
    return online_payments.online_payments_sweep()
