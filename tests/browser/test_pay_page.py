"""The customers' pay page in a real browser: Debian's chromium driven by Playwright
(never a downloaded browser), against the service (pytest-django's live server) and the
fake bKash's checkout page."""

import os
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from billing.ledger import ledger_invariant_errors
from billing.models import Collection, Customer, OnlinePayment, Package, Payment
from billing.pay_links import pay_link
from core.enums import OnlineState

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: headless, root, and no calls home on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test
    # itself are ordinary blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Each test's pages open in a new context: a fresh, empty profile.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def served(bkash, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server


def customer_owing(*amounts: str) -> Customer:
    package = Package.objects.create(name=f"P{uuid.uuid4().hex[:6]}", speed_mbps=10,
                                     price=Decimal(amounts[0]))
    customer = Customer.objects.create(name="Nusrat", phone=f"019{uuid.uuid4().int % 10**8:08d}",
                                       package=package)
    for month, amount in zip(["MARCH", "APRIL"], amounts, strict=False):
        Payment.objects.create(customer=customer, billing_year=2026, billing_month=month,
                               bill_amount=Decimal(amount))
    return customer


def test_a_customer_pays_two_bills_with_bkash_and_sees_the_receipt(browser, served, bkash):
    customer = customer_owing("500.00", "700.00")
    page = browser.new_page(locale="en-US")
    page.goto(pay_link(customer))
    assert page.locator("#total").inner_text() == "1200.00 BDT"
    page.get_by_role("button", name="Pay with bKash").click()
    page.wait_for_url(f"{bkash.root_url}/checkout/*")
    assert page.locator("#amount").inner_text() == "1200.00 BDT"
    page.locator("#pay").click()
    page.wait_for_url("**/result/**")
    assert page.locator("#state").inner_text() == "Paid"
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == OnlineState.SUCCEEDED
    assert page.locator("#trx").inner_text() == online.transaction_id
    assert "March 2026, April 2026" in page.locator("#receipt").inner_text()
    lines = Collection.objects.filter(online_payment=online)
    assert sum(line.amount for line in lines) == Decimal("1200.00")
    assert ledger_invariant_errors(customer.pk) == []
    page.reload()  # reloading the receipt pays nothing twice
    assert page.locator("#state").inner_text() == "Paid"
    assert Collection.objects.filter(online_payment=online).count() == lines.count()
    page.locator("#back").click()
    assert page.locator("#nothing-owed").is_visible()


def test_a_cancel_at_bkash_says_so_in_bangla_and_credits_nothing(browser, served, bkash):
    customer = customer_owing("500.00")
    page = browser.new_page(locale="bn-BD")
    page.goto(pay_link(customer))
    assert page.locator("h1").inner_text() == "ইন্টারনেট বিল পরিশোধ"
    page.locator("button[name=provider][value=BKASH]").click()
    page.wait_for_url(f"{bkash.root_url}/checkout/*")
    page.locator("#cancel").click()
    page.wait_for_url("**/result/**")
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == OnlineState.CANCELLED
    assert page.locator("#state").is_visible()
    assert page.locator("#receipt").count() == 0
    assert not Collection.objects.filter(online_payment=online).exists()
    assert not Payment.objects.get(customer=customer).paid


@pytest.mark.parametrize("provider, name, checkout", [
    ("NAGAD", "Nagad", "/checkout/"),
    # SSLCommerz sends the browser back with a form that posts itself to our return URL.
    ("SSLCOMMERZ", "Card / SSLCommerz", "/gw/"),
])
def test_a_customer_pays_with_nagad_or_sslcommerz_and_sees_the_receipt(
    browser, live_server, settings, request, provider, name, checkout
):
    fake = request.getfixturevalue(provider.lower())
    settings.PUBLIC_BASE_URL = live_server.url
    customer = customer_owing("500.00", "700.00")
    page = browser.new_page(locale="en-US")
    page.goto(pay_link(customer))
    page.get_by_role("button", name=f"Pay with {name}").click()
    page.wait_for_url(f"{fake.root_url}{checkout}*")
    assert page.locator("#amount").inner_text() == "1200.00 BDT"
    page.locator("#pay").click()
    page.wait_for_url("**/result/**")
    assert page.locator("#state").inner_text() == "Paid"
    online = OnlinePayment.objects.get(customer=customer)
    assert online.state == OnlineState.SUCCEEDED and online.provider == provider
    assert page.locator("#trx").inner_text() == online.transaction_id
    lines = Collection.objects.filter(online_payment=online)
    assert sum(line.amount for line in lines) == Decimal("1200.00")
    assert ledger_invariant_errors(customer.pk) == []
    page.locator("#back").click()
    assert page.locator("#nothing-owed").is_visible()
