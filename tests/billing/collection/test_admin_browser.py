"""The reconciliation page and an invoice's Stripe twin in admin, in a real browser: Debian's chromium
driven by Playwright against `live_server`. Screenshots go to `.artifacts/screenshots/` (git-ignored).

Skipped, with the reason, only when `/usr/bin/chromium` is absent. Playwright never downloads a browser
here: it launches the system's chromium.
"""

import os
import re
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from billing.collection.models import ExternalInvoice
from tests.billing.collection.helpers import NOW, billed_customer, finalize_february, invoice_event, post_event, tokens
from tests.billing.credits.helpers import save_default_card
from tests.conftest import REPO_ROOT

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"]
SCREENSHOTS = REPO_ROOT / ".artifacts" / "screenshots"
PASSWORD = "browser-test-password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]


class _NoCapture:
    """Committed transactions run their on-commit callbacks by themselves here (transactional test)."""

    def __call__(self, execute=True):
        import contextlib

        return contextlib.nullcontext()


@pytest.fixture
def february(organization, pricing, stripe_billing, stripe_api):
    """Data made at a frozen 2026-03-02 00:30 UTC; the browser then runs at the real time (its cookies
    would otherwise be expired)."""
    with time_machine.travel(NOW, tick=True):
        paid = billed_customer(organization, pricing, external_id="paid", usage=[tokens(2_000_000)])
        late = billed_customer(organization, pricing, external_id="late", collection_method="send_invoice",
                               days_until_due=1, usage=[tokens(4_000_000)], currency="EUR")
        billed_customer(organization, pricing, external_id="broken", stripe_customer_id="cus_gone",
                        usage=[tokens(1_000_000)])
        for customer in (paid, late):
            finalize_february(customer, _NoCapture())
        twin = ExternalInvoice.objects.get(customer=paid)
        save_default_card(stripe_api, twin.stripe_customer_id)
        stripe_api.v1.invoices.pay(twin.stripe_invoice_id)
        paid_copy = stripe_api.v1.invoices.retrieve(twin.stripe_invoice_id).to_dict()
        assert post_event(Client(), organization, invoice_event(paid_copy, "invoice.paid")).status_code == 200
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    return ExternalInvoice.objects.get(customer__external_id="broken").invoice


def test_reconciliation_and_invoice_pages_in_chromium(live_server, february, organization):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop on this thread; the ORM runs beside it
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
            page.on("console", lambda message: message.type == "error" and errors.append(
                f"{message.text} {message.location.get('url')}"
            ))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("response", lambda response: response.status >= 400 and errors.append(response.url))
            page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            page.fill("#id_username", "root")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}/admin/")

            page.goto(f"{live_server.url}/admin/billing/externalinvoice/")
            page.click("text=Reconciliation")
            page.fill("input[name=period]", "2026-02")
            page.click("input[value=Show]")
            rows = page.locator("#reconciliation tbody tr")
            assert rows.count() == 3
            text = page.locator("#reconciliation").inner_text()
            assert "unpaid_past_due" in text and "2.00 EUR" in text  # late: invoiced, not collected, in euros
            assert "failed" in text and "InvalidRequestError" in text  # broken: the push failed
            paid_row = rows.filter(has=page.locator("small", has_text=re.compile("^paid$"))).inner_text()
            assert paid_row.count("$1.00") == 4  # metered, due, invoiced, collected
            page.screenshot(path=str(SCREENSHOTS / "admin-reconciliation.png"), full_page=True)

            page.goto(f"{live_server.url}/admin/billing/invoice/{february.pk}/change/")
            assert "InvalidRequestError" in page.locator("body").inner_text()
            page.screenshot(path=str(SCREENSHOTS / "admin-invoice-stripe.png"), full_page=True)
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
    # The browser's own request for /favicon.ico (the project serves none; Django admin links none).
    assert [error for error in errors if not error.endswith("/favicon.ico")] == []
