"""The dashboard in a real browser: Debian's chromium driven by Playwright against `live_server`.

Each page loads with no console error, its charts draw the right number of points, the CSV
downloads, approving a pending match changes the tables, "Sync now" shows its progress and result,
a viewer sees no action, and no page is wider than a phone's screen. Screenshots of every page at
1366 px and at phone width are saved under `.artifacts/screenshots/` (git-ignored) for people to look at.

Skipped, with the reason, only when `/usr/bin/chromium` is absent (`.ci/run` installs it). Playwright
never downloads a browser here: it launches the system's chromium.
"""

import csv
import io
import os
from pathlib import Path

import pytest
import time_machine

from accounts.models import Role
from tests.conftest import REPO_ROOT
from tests.factories import MembershipFactory
from tests.margins import dashboard_data

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / ".artifacts" / "screenshots"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "browser-test-password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM} (.ci/run installs it)"
    ),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread; Django's ORM (the test's own queries,
    # not the server's, which runs in its own thread) would otherwise refuse to run next to it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Session:
    """A signed-in browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, base_url: str, username: str, viewport=DESKTOP):
        self.base_url = base_url
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{base_url}/login/?next=/dashboard/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{base_url}/dashboard/")

    def open(self, path: str):
        response = self.page.goto(self.base_url + path)
        assert response.status == 200, f"{path}: {response.status}"
        return self.page

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits_width(self) -> bool:
        return self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    def close(self):
        self.context.close()


@pytest.fixture
def data(organization, settings):
    """The dashboard data, with the server's clock at dashboard_data.NOW (ticking). The browser's clock
    is the real one, so the session cookie has no expiry date that the browser could find past."""
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    with time_machine.travel(dashboard_data.NOW, tick=True):
        yield dashboard_data.build(organization)


def user_with(organization, role: str) -> str:
    membership = MembershipFactory(organization=organization, role=role)
    membership.user.set_password(PASSWORD)
    membership.user.save()
    return membership.user.username


@pytest.fixture
def session(browser, live_server, organization):
    opened = []

    def make(role=Role.MEMBER, viewport=DESKTOP) -> Session:
        one = Session(browser, live_server.url, user_with(organization, role), viewport)
        opened.append(one)
        return one

    yield make
    for one in opened:
        one.close()


PAGES = {
    "margins": "/dashboard/?period=2026-04",
    "customer": "/dashboard/customers/acme-corp?period=2026-04",
    "mappings": "/dashboard/mappings",
    "usage": "/dashboard/usage?start=2026-04-01&end=2026-04-20",
}


@pytest.mark.parametrize("viewport_name, viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_every_page_loads_without_console_errors_and_fits_the_screen(data, session, viewport_name, viewport):
    browser_session = session(Role.MEMBER, viewport)
    for name, path in PAGES.items():
        page = browser_session.open(path)
        page.wait_for_load_state("load")
        assert page.locator("h1").count() == 1
        browser_session.shot(f"{name}-{viewport_name}")
        assert browser_session.fits_width(), f"{name} is wider than the {viewport_name} screen"
    assert browser_session.errors == []


def test_charts_draw_the_right_number_of_points(data, session):
    browser_session = session()
    page = browser_session.open(PAGES["margins"])
    sparklines = page.locator("svg.sparkline")
    assert sparklines.count() == 3
    for index in range(3):
        assert sparklines.nth(index).locator("circle.pt").count() == 4  # 3 months + projected
        assert sparklines.nth(index).locator("circle.pt.projected").count() == 1
        assert sparklines.nth(index).bounding_box()["width"] > 50  # really drawn, not collapsed

    page = browser_session.open(PAGES["customer"])
    chart = page.locator("#months-chart svg")
    assert chart.locator("rect.pt").count() == 8
    assert chart.locator("rect.pt.projected").count() == 2
    assert chart.bounding_box()["height"] > 100

    page = browser_session.open(PAGES["usage"])
    assert page.locator("#day-chart svg rect.pt").count() == 40  # 20 days x revenue and cost
    assert page.locator("#model-chart svg rect.pt").count() == 3
    assert page.locator("#customer-chart svg rect.pt").count() == 4
    assert browser_session.errors == []


def test_the_usage_page_shows_the_most_expensive_customers_then_all_of_them(data, session, monkeypatch):
    from margins import pages

    monkeypatch.setattr(pages, "USAGE_CUSTOMERS_SHOWN", 2)  # the fixture's 4 customers, as if there were hundreds
    browser_session = session()
    page = browser_session.open(PAGES["usage"])
    assert page.locator("#customer-chart svg rect.pt").count() == 2
    more = page.locator("#by-customer tr.more")
    assert more.locator("td").first.inner_text() == "2 more customers"
    browser_session.shot("usage-most-expensive")
    more.locator("a").click()
    page.wait_for_url("**customers=all**")
    assert page.locator("#customer-chart svg rect.pt").count() == 4
    assert page.locator("#by-customer tr.more").count() == 0
    browser_session.shot("usage-all-customers")
    page.get_by_role("link", name="Show the most expensive").click()
    page.wait_for_function("!location.search.includes('customers=all')")
    assert page.locator("#customer-chart svg rect.pt").count() == 2
    assert browser_session.errors == []


def test_the_csv_downloads(data, session):
    page = session().open(PAGES["margins"])
    with page.expect_download() as download_info:
        page.click("#csv-download")
    download = download_info.value
    assert download.suggested_filename == "margins-2026-04.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert rows[0][:5] == ["Customer", "Stripe ID", "Tag Value", "Revenue ($)", "Cost ($)"]
    assert {row[2] for row in rows[1:]} == {"acme-corp", "beta", "gamma"}


def test_approving_a_pending_match_moves_it_to_the_active_mappings(data, session):
    browser_session = session(Role.MEMBER)
    page = browser_session.open(PAGES["mappings"])
    pending = data["pending"]
    assert page.locator(f'tr[data-mapping="{pending.id}"]').count() == 1
    assert page.locator("#active-mappings").get_by_text("cus_delta").count() == 0
    page.locator(f'tr[data-mapping="{pending.id}"] button.primary').click()
    page.wait_for_selector("#pending-table", state="detached")
    assert page.locator("#active-mappings").get_by_text("cus_delta").count() == 1
    browser_session.shot("mappings-after-approve")
    pending.refresh_from_db()
    assert pending.status == "active"
    assert browser_session.errors == []


def test_mapping_by_hand_adds_an_active_mapping(data, session):
    browser_session = session(Role.ADMIN)
    page = browser_session.open(PAGES["mappings"])
    page.select_option("#map-stripe", "cus_unmatched")
    page.fill("#map-tag", "gamma")
    page.click("#map-by-hand button[type=submit]")
    page.wait_for_selector("#active-mappings >> text=cus_unmatched")
    assert page.locator("#unmatched-stripe").get_by_text("cus_unmatched").count() == 0
    assert page.locator("#unmatched-stripe").get_by_text("cus_delta").count() == 1  # pending is not mapped yet
    assert browser_session.errors == []


def test_a_viewer_sees_no_actions(data, session):
    browser_session = session(Role.VIEWER)
    page = browser_session.open(PAGES["mappings"])
    assert page.locator(f'tr[data-mapping="{data["pending"].id}"]').count() == 1
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("#map-by-hand").count() == 0
    assert page.locator("#read-only").is_visible()
    browser_session.shot("mappings-viewer")
    page = browser_session.open(PAGES["margins"])
    assert page.locator("#sync-now").count() == 0
    assert browser_session.errors == []


def test_the_organization_switcher_moves_the_pages_to_the_chosen_organization(
    data, browser, live_server, organization
):
    from django.contrib.auth import get_user_model

    from tests.factories import OrganizationFactory

    username = user_with(organization, Role.OWNER)
    other = OrganizationFactory(name="Birch Labs")
    MembershipFactory(organization=other, user=get_user_model().objects.get(username=username), role=Role.VIEWER)
    browser_session = Session(browser, live_server.url, username)
    page = browser_session.open(PAGES["usage"])
    browser_session.shot("organization-switcher")

    with page.expect_navigation():
        page.select_option("#organization-switch", str(other.pk))

    assert page.url.endswith(PAGES["usage"])  # back on the same page, for the other organization
    assert page.locator("#organization-switch option:checked").inner_text() == "Birch Labs"
    assert "(viewer)" in page.locator("nav.top .who").inner_text()
    assert browser_session.errors == []
    browser_session.close()


def test_sync_now_shows_progress_then_the_result(organization, connected, stripe_account, session):
    customer = stripe_account.customer(name="Paying Co")
    stripe_account.paid_invoices(customer, amount=2500)
    browser_session = session(Role.MEMBER)
    page = browser_session.open("/dashboard/")
    page.click("#sync-now")
    assert page.locator("#sync-now").is_disabled() or page.locator("#sync-status").inner_text()
    page.wait_for_selector("#sync-status >> text=Synced:")
    assert "1 customers" in page.locator("#sync-status").inner_text()
    page.wait_for_load_state("load")
    page.wait_for_selector("#sync-tile >> text=last")
    assert browser_session.errors == []
