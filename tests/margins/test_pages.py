"""The dashboard pages with Django's test client: access rules, what each page shows, bad input.
(The same pages in a real browser: tests/margins/test_pages_browser.py.)"""

import re

import pytest
import time_machine
from django.test import Client

from accounts.models import Role
from tests.factories import MembershipFactory, OrganizationFactory
from tests.margins import dashboard_data

pytestmark = pytest.mark.django_db

PAGES = ["/dashboard/", "/dashboard/usage", "/dashboard/mappings", "/dashboard/customers/acme-corp"]


@pytest.fixture
def frozen():
    with time_machine.travel(dashboard_data.NOW, tick=False):
        yield


@pytest.fixture
def data(organization, frozen):
    return dashboard_data.build(organization)


def login(organization, role=Role.MEMBER) -> Client:
    client = Client()
    client.force_login(MembershipFactory(organization=organization, role=role).user)
    return client


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_a_free_organization_gets_a_403_page_pointing_at_the_upgrade(free_organization, path):
    response = login(free_organization, Role.OWNER).get(path)
    assert response.status_code == 403
    assert "Pro plan" in text(response)
    assert 'href="/admin/accounts/organization/"' in response.content.decode()


def test_a_user_without_membership_gets_a_403_page(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("loner", password="x" * 12))
    response = client.get("/dashboard/")
    assert response.status_code == 403
    assert "not a member" in text(response)


def test_sign_in_page_logs_a_member_in_and_goes_to_the_dashboard(organization, django_user_model):
    user = django_user_model.objects.create_user("ops", password="correct horse battery")
    MembershipFactory(organization=organization, user=user, role=Role.VIEWER)
    client = Client()
    response = client.post("/login/", {"username": "ops", "password": "correct horse battery", "next": ""})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200
    wrong = Client().post("/login/", {"username": "ops", "password": "nope"})
    assert "didn't match" in text(wrong)


def test_margins_page_shows_the_table_tiles_sparklines_and_csv_link(data, organization):
    response = login(organization, Role.VIEWER).get("/dashboard/?period=2026-04")
    assert response.status_code == 200
    body = response.content.decode()
    page = text(response)
    # Tiles: 100 + 100 + 10 revenue; 30 + 60 + 9 cost; (210 - 99) / 210.
    assert "$210.00" in page and "$99.00" in page and "52.9%" in page
    assert "1 healthy · 1 at risk · 1 critical" in page
    rows = re.findall(r'<tr data-customer="([^"]+)"', body)
    assert rows == ["gamma", "beta", "acme-corp"]  # default: margin % ascending (worst first)
    assert body.count('class="chart sparkline"') == 3
    assert body.count('data-points="4"') == 3  # three months + the projected one
    assert 'href="/api/margins?period=2026-04&amp;format=csv"' in body
    assert "$50.00" in page  # Beta's budget suggestion: 100 x (1 - 50 %)
    assert 'href="/dashboard/customers/acme-corp?period=2026-04"' in body


def test_margins_page_sorts_by_any_column(data, organization):
    client = login(organization)
    body = client.get("/dashboard/?period=2026-04&sort=revenue&order=desc").content.decode()
    assert re.findall(r'<tr data-customer="([^"]+)"', body) == ["acme-corp", "beta", "gamma"]
    body = client.get("/dashboard/?period=2026-04&sort=customer&order=asc").content.decode()
    assert re.findall(r'<tr data-customer="([^"]+)"', body) == ["acme-corp", "beta", "gamma"]
    body = client.get("/dashboard/?period=2026-04&sort=bogus").content.decode()  # unknown key: the default
    assert re.findall(r'<tr data-customer="([^"]+)"', body) == ["gamma", "beta", "acme-corp"]


@pytest.mark.parametrize("period", ["2026-13", "April", "0000-01", "\uff19\uff19\uff19\uff19-01"])
def test_margins_page_answers_a_bad_period_with_a_message_and_this_month(data, organization, period):
    response = login(organization).get("/dashboard/", {"period": period})
    assert response.status_code == 200
    assert "showing 2026-04" in text(response)


def test_sync_now_is_offered_to_members_of_a_connected_organization_only(data, organization):
    assert 'id="sync-now"' in login(organization, Role.MEMBER).get("/dashboard/").content.decode()
    assert 'id="sync-now"' not in login(organization, Role.VIEWER).get("/dashboard/").content.decode()


def test_without_stripe_there_is_no_sync_button(organization, frozen):
    body = login(organization, Role.OWNER).get("/dashboard/").content.decode()
    assert 'id="sync-now"' not in body
    assert "not connected" in body and "No customer has revenue" in body


def test_customer_page_shows_chart_models_invoice_credit_and_budget(data, organization):
    response = login(organization, Role.MEMBER).get("/dashboard/customers/acme-corp?period=2026-04")
    assert response.status_code == 200
    body, page = response.content.decode(), text(response)
    chart = re.search(r'<div id="months-chart"[^>]*>(.*?)</svg>', body, re.S).group(1)
    assert 'data-points="8"' in chart  # (3 months + projected) x (revenue, cost)
    assert chart.count('class="pt bar revenue"') == 3 and chart.count('class="pt bar revenue projected"') == 1
    assert "openai/gpt-4o" in page and "openai/gpt-4o-mini" in page
    assert "$20.00" in page and "$10.00" in page  # model costs in April
    assert re.search(r'id="invoice-link" href="/invoices/view/[^"]+"', body)
    assert "so far" in page
    assert "Acme monthly" in page and "$30.00 / $50.00" in page  # April's spend against the budget
    assert 'id="credit-balance">$0.00<' in body


def test_a_viewer_sees_the_draft_but_gets_no_invoice_link(data, organization):
    body = login(organization, Role.VIEWER).get("/dashboard/customers/acme-corp?period=2026-04").content.decode()
    assert "so far" in body
    assert "/invoices/view/" not in body and "needs the member role" in body


def test_customer_page_of_an_unknown_or_foreign_customer_is_404(data, organization):
    other = OrganizationFactory(name="Other", plan="pro")
    dashboard_data.build(other)
    client = login(organization)
    assert client.get("/dashboard/customers/nobody").status_code == 404
    assert client.get("/dashboard/customers/nul%00byte").status_code == 404
    assert client.get(f"/dashboard/customers/{data['acme'].uuid}").status_code == 404  # by external id only
    assert client.get("/dashboard/customers/gamma").status_code == 200  # unmapped, revenue on its events
    assert login(OrganizationFactory(plan="pro")).get("/dashboard/customers/acme-corp").status_code == 404


def test_customer_page_of_a_mapped_stripe_customer_without_usage_customer(organization, frozen):
    from margins import services
    from tests.margins.test_views_margins import stripe_customer

    stripe_customer(organization, "cus_x", name="X Co")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_x", tag_value="x-co")
    response = login(organization).get("/dashboard/customers/x-co")
    assert response.status_code == 200
    assert "which has no usage customer yet" in text(response)


def test_mappings_page_lists_pending_unmatched_and_unmapped(data, organization):
    response = login(organization).get("/dashboard/mappings")
    body, page = response.content.decode(), text(response)
    assert f'data-mapping="{data["pending"].id}"' in body
    assert "87%" in page and "Delta Laboratories" in page
    assert "Lonely Ltd" in page and "$50.00" in page
    assert "$0.0045" in page  # Delta's cost of 4,500 microdollars: sub-cent amounts keep their digits
    assert f'/api/customer-mappings/{data["pending"].id}/approve' in body
    assert 'id="map-by-hand"' in body


def test_a_viewer_sees_no_mapping_actions(data, organization):
    body = login(organization, Role.VIEWER).get("/dashboard/mappings").content.decode()
    assert f'data-mapping="{data["pending"].id}"' in body
    assert "/approve" not in body and "/reject" not in body and 'id="map-by-hand"' not in body
    assert 'id="read-only"' in body


def test_usage_page_charts_every_day_of_the_range(data, organization):
    response = login(organization).get("/dashboard/usage?start=2026-04-01&end=2026-04-20")
    assert response.status_code == 200
    body, page = response.content.decode(), text(response)
    day_chart = re.search(r'<div id="day-chart"[^>]*>(.*?)</svg>', body, re.S).group(1)
    assert 'data-points="40"' in day_chart  # 20 days x (revenue, cost)
    model_chart = re.search(r'<div id="model-chart"[^>]*>(.*?)</svg>', body, re.S).group(1)
    assert 'data-points="3"' in model_chart
    customer_chart = re.search(r'<div id="customer-chart"[^>]*>(.*?)</svg>', body, re.S).group(1)
    assert 'data-points="4"' in customer_chart
    assert "$99.0045" not in page and "$99.00" in page  # total cost 99.0045 shown to the cent
    assert "2026-04-20" in page


@pytest.mark.parametrize(
    "query, message",
    [("start=2026-04-10&end=2026-04-01", "before the start"), ("start=nope", "YYYY-MM-DD"),
     ("start=2024-01-01&end=2026-04-01", "at most 366 days")],
)
def test_usage_page_refuses_a_bad_range_with_a_message(data, organization, query, message):
    response = login(organization).get(f"/dashboard/usage?{query}")
    assert response.status_code == 200
    assert message in text(response)
    assert 'data-points="60"' in response.content.decode()  # the default: 30 days


def test_pages_answer_get_only(data, organization):
    assert login(organization).post("/dashboard/").status_code == 405


def test_customer_page_lists_only_the_budgets_that_count_its_cost(data, organization):
    from events.models import Budget
    from events.services import budget_create

    for name, scope, value in [("Org", "organization", ""), ("Each customer", "customer", ""),
                               ("Beta only", "customer", "beta"), ("Chat", "event_type", "chat")]:
        budget_create(organization=organization, name=name, scope=scope, scope_value=value,
                      limit_microdollars=1_000_000, period=Budget.Period.DAY, action=Budget.Action.ALERT)
    page = text(login(organization).get("/dashboard/customers/acme-corp?period=2026-04"))
    assert "Acme monthly" in page and "Org" in page and "Each customer" in page
    assert "Beta only" not in page and "Chat" not in page
    assert "whole organization: this customer's share" in page


LEDGER_TABLES = ("events_usageevent", "events_vendorresponse")


@pytest.mark.parametrize(
    "path",
    ["/dashboard/usage?start=2026-02-01&end=2026-04-20", "/dashboard/usage", "/dashboard/customers/acme-corp",
     "/dashboard/customers/beta?period=2026-03"],
)
def test_usage_and_customer_pages_read_the_rollups_and_show_what_the_ledger_sums_showed(
    data, organization, monkeypatch, path
):
    """No query on the ledger; the same page as when the selectors summed the ledger (their former
    code, tests/events/test_usage_summary.py, patched in for the comparison)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from events import selectors
    from tests.events.test_usage_summary import ledger_cost, ledger_summary

    for name, scope, value in [("Org", "organization", ""), ("Each customer", "customer", "")]:
        from events.services import budget_create

        budget_create(organization=organization, name=name, scope=scope, scope_value=value,
                      limit_microdollars=1_000_000, period="day", action="alert")
    client = login(organization, Role.VIEWER)  # a viewer gets no invoice link (a fresh token each time)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    assert [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in LEDGER_TABLES)] == []

    monkeypatch.setattr(selectors, "usage_summary", lambda *, organization, start, end, customer_limit=None: (
        ledger_summary(organization, start, end, customer_limit)))
    monkeypatch.setattr(selectors, "customer_cost", lambda *, organization, customer, start, end: ledger_cost(
        organization, customer, start, end))
    assert unmasked(client.get(path)) == unmasked(response)


def unmasked(response) -> str:
    """The page without its CSRF token (masked afresh at each render)."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_usage_page_shows_the_most_expensive_customers_and_one_line_for_the_rest(data, organization, monkeypatch):
    from datetime import UTC, datetime

    from costcalc.templatetags.money import money
    from events.selectors import usage_summary
    from margins import pages

    monkeypatch.setattr(pages, "USAGE_CUSTOMERS_SHOWN", 2)
    client = login(organization)
    response = client.get("/dashboard/usage?start=2026-04-01&end=2026-04-20")
    body, page = response.content.decode(), text(response)

    everyone = usage_summary(
        organization=organization, start=datetime(2026, 4, 1, tzinfo=UTC), end=datetime(2026, 4, 21, tzinfo=UTC)
    ).customers
    shown, rest = everyone[:2], everyone[2:]
    customer_chart = re.search(r'<div id="customer-chart"[^>]*>(.*?)</svg>', body, re.S).group(1)
    assert 'data-points="2"' in customer_chart
    assert "The 2 most expensive of 4 customers." in page
    more = re.search(r'<tr class="more">(.*?)</tr>', body, re.S).group(1)
    assert 'href="?start=2026-04-01&amp;end=2026-04-20&amp;customers=all#by-customer"' in more
    assert text_of(more) == (
        f"2 more customers {money(sum(c.revenue_microdollars for c in rest))} "
        f"{money(sum(c.cost_microdollars for c in rest))} {sum(c.requests for c in rest)}"
    )
    for customer in shown:
        assert f"/dashboard/customers/{customer.key}" in body

    everything = client.get("/dashboard/usage?start=2026-04-01&end=2026-04-20&customers=all")
    all_body = everything.content.decode()
    all_chart = re.search(r'<div id="customer-chart"[^>]*>(.*?)</svg>', all_body, re.S).group(1)
    assert 'data-points="4"' in all_chart
    assert '<tr class="more">' not in all_body
    assert "All 4 customers. Show the most expensive" in text(everything)


def test_usage_page_lists_every_customer_when_they_fit(data, organization):
    body = login(organization).get("/dashboard/usage?start=2026-04-01&end=2026-04-20").content.decode()
    assert '<tr class="more">' not in body and "most expensive" not in body


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
