"""The customers' pay page, server-rendered and light enough for a cheap phone, in
English and Bangla: ``/pay/<token>`` (the open bills and a button per provider), the
provider's way back (``/pay/<token>/return/<uid>``), the result page, and the
providers' webhooks. The result page says "paid" only once the provider confirmed it
server to server (``billing.online_payments``)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import PERIOD_ORDER, OnlinePayment
from billing.online_payments import (
    OPEN,
    ProviderDown,
    online_payment_notice,
    online_payment_returned,
    online_payment_start,
    open_bills,
)
from billing.pay_links import customer_of_pay_token
from billing.providers import ProviderError, enabled_providers
from billing.services import amount_due
from core.enums import OnlineProvider, Status
from core.errors import FieldErrors

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {"BKASH": "bKash", "NAGAD": "Nagad", "SSLCOMMERZ": "Card / SSLCommerz"}
TEXT = {
    "en": {
        "title": "Pay your internet bill",
        "hello": "Hello",
        "month": "Month",
        "due": "Due",
        "total": "Total due",
        "pay_with": "Pay with",
        "nothing": "Nothing is owed. Thank you!",
        "no_provider": (
            "Online payment is not available right now. Please pay by "
            "cash or mobile money."
        ),
        "bad_link": "This pay link is not valid or has expired. Ask your ISP for a new one.",
        "paid": "Paid",
        "paid_text": "Your payment is confirmed. Your connection is switched on.",
        "trx": "Transaction ID",
        "amount": "Amount",
        "date": "Date",
        "bills": "Bills paid",
        "confirming": "Confirming your payment",
        "confirming_text": (
            "We are waiting for the provider to confirm. This page "
            "refreshes by itself."
        ),
        "FAILED": "The payment did not go through. No money was taken, or it will be returned.",
        "CANCELLED": "The payment was cancelled.",
        "EXPIRED": "The payment timed out.",
        "REFUNDED": "This payment was refunded.",
        "again": "Back to your bills",
        "down": "The provider is not answering. Please try again in a minute.",
        "receipt": "Receipt",
        "language": "বাংলা",
    },
    "bn": {
        "title": "ইন্টারনেট বিল পরিশোধ",
        "hello": "স্বাগতম",
        "month": "মাস",
        "due": "বাকি",
        "total": "মোট বাকি",
        "pay_with": "পরিশোধ করুন",
        "nothing": "কোনো বকেয়া নেই। ধন্যবাদ!",
        "no_provider": "এখন অনলাইন পেমেন্ট চালু নেই। নগদ বা মোবাইল ব্যাংকিংয়ে পরিশোধ করুন।",
        "bad_link": "এই লিংকটি সঠিক নয় বা মেয়াদ শেষ। নতুন লিংকের জন্য আপনার আইএসপিকে বলুন।",
        "paid": "পরিশোধিত",
        "paid_text": "আপনার পেমেন্ট নিশ্চিত হয়েছে। আপনার সংযোগ চালু করা হয়েছে।",
        "trx": "ট্রানজ্যাকশন আইডি",
        "amount": "পরিমাণ",
        "date": "তারিখ",
        "bills": "পরিশোধিত বিল",
        "confirming": "পেমেন্ট নিশ্চিত করা হচ্ছে",
        "confirming_text": "প্রোভাইডারের নিশ্চিতকরণের অপেক্ষা চলছে। পাতাটি নিজে থেকেই রিফ্রেশ হবে।",
        "FAILED": "পেমেন্ট সম্পন্ন হয়নি। টাকা কাটা হয়নি, অথবা ফেরত দেওয়া হবে।",
        "CANCELLED": "পেমেন্ট বাতিল করা হয়েছে।",
        "EXPIRED": "পেমেন্টের সময় শেষ হয়ে গেছে।",
        "REFUNDED": "এই পেমেন্ট ফেরত দেওয়া হয়েছে।",
        "again": "বিলে ফিরে যান",
        "down": "প্রোভাইডার সাড়া দিচ্ছে না। এক মিনিট পরে আবার চেষ্টা করুন।",
        "receipt": "রসিদ",
        "language": "English",
    },
}


def _language(request: HttpRequest) -> str:
    chosen = request.GET.get("lang")
    if chosen in TEXT:
        return chosen
    accepted = request.headers.get("Accept-Language", "")
    return "bn" if accepted.lower().startswith("bn") else "en"


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    lang = _language(request)
    other = "en" if lang == "bn" else "bn"
    response = render(request, f"pay/{template}", {
        "t": TEXT[lang], "lang": lang, "other_lang": other, **context}, status=status)
    response["Cache-Control"] = "no-store"  # a pay link's page is the customer's own
    # The token must not leak to providers; "no-referrer" would also make the browser
    # send "Origin: null" with the pay form, which CSRF protection refuses.
    response["Referrer-Policy"] = "same-origin"
    return response


def _customer(token: str):
    customer = customer_of_pay_token(token)
    if customer is None or customer.status == Status.REMOVED:
        return None
    return customer


def _bad_link(request) -> HttpResponse:
    return _page(request, "message.html", {"message_key": "bad_link"}, status=404)


@require_GET
def pay_page(request, token: str) -> HttpResponse:
    customer = _customer(token)
    if customer is None:
        return _bad_link(request)
    return _bills_page(request, token, customer)


def _bills_page(request, token, customer, *, error: str = "", status: int = 200):
    bills = [(bill, amount_due(bill)) for bill in open_bills(customer)]
    providers = [(code, PROVIDER_NAMES[code]) for code in enabled_providers()]
    return _page(request, "bills.html", {
        "token": token, "customer": customer, "bills": bills,
        "total": sum((due for _, due in bills), 0), "providers": providers, "error": error,
    }, status=status)


@require_POST
def pay_start(request, token: str) -> HttpResponse:
    customer = _customer(token)
    if customer is None:
        return _bad_link(request)
    provider = request.POST.get("provider", "")
    if provider not in OnlineProvider.values:
        return _bills_page(request, token, customer, error="provider", status=400)
    lang = _language(request)
    try:
        online = online_payment_start(customer=customer, provider=provider)
    except FieldErrors as error:
        message = " ".join(m for messages in error.body.values() for m in messages)
        return _bills_page(request, token, customer, error=message, status=400)
    except ProviderDown:
        return _bills_page(request, token, customer, error=TEXT[lang]["down"], status=503)
    return HttpResponseRedirect(online.redirect_url)


def _online(customer, uid: str) -> OnlinePayment | None:
    try:
        return OnlinePayment.objects.filter(customer=customer, uid=uid).first()
    except (ValueError, TypeError):
        return None


# SSLCommerz sends the customer back with a form POST from its own site: no CSRF token
# can come with it, and none is needed, as the way back only makes us ask the provider.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def pay_return(request, token: str, uid: str) -> HttpResponse:
    """The provider sends the customer back here; we ask the provider how it ended."""
    customer = _customer(token)
    online = _online(customer, uid) if customer else None
    if online is None:
        return _bad_link(request)
    try:
        online_payment_returned(online_payment=online,
                                callback={**request.GET.dict(), **request.POST.dict()})
    except ProviderDown:
        pass  # the result page waits; the sweep asks the provider again
    except FieldErrors:
        return _bad_link(request)
    return HttpResponseRedirect(f"/pay/{token}/result/{online.uid}?lang={_language(request)}")


@require_GET
def pay_result(request, token: str, uid: str) -> HttpResponse:
    customer = _customer(token)
    online = _online(customer, uid) if customer else None
    if online is None:
        return _bad_link(request)
    return _page(request, "result.html", {
        "token": token, "customer": customer, "online": online,
        "provider_name": PROVIDER_NAMES[online.provider], "waiting": online.state in OPEN,
        "bills": online.payments.order_by(*PERIOD_ORDER),
    })


def _webhook(provider: str):
    @csrf_exempt
    @require_POST
    def webhook(request) -> HttpResponse:
        """A provider's server-to-server notice (bKash: an Amazon SNS message; SSLCommerz:
        its IPN form), verified by the provider's own rules before it counts."""
        try:
            online_payment_notice(provider=provider, body=request.body)
        except ProviderDown as error:
            logger.warning("%s webhook not handled yet: %s", provider, error)
            return HttpResponse("try again", status=503, content_type="text/plain")
        except ProviderError as error:
            logger.warning("%s webhook refused: %s", provider, error)
            return HttpResponse(str(error), status=400, content_type="text/plain")
        return HttpResponse("ok", content_type="text/plain")

    return webhook


urlpatterns = [
    path("webhooks/bkash", _webhook(OnlineProvider.BKASH), name="pay-webhook-bkash"),
    path("webhooks/sslcommerz", _webhook(OnlineProvider.SSLCOMMERZ),
         name="pay-webhook-sslcommerz"),
    path("<str:token>", pay_page, name="pay-page"),
    path("<str:token>/start", pay_start, name="pay-start"),
    path("<str:token>/return/<uuid:uid>", pay_return, name="pay-return"),
    path("<str:token>/result/<uuid:uid>", pay_result, name="pay-result"),
]
