"""events in Django admin: every page renders, and budgets edited there move the blocklist at once."""

import pytest

from events.models import BlocklistState, Budget, UsageEvent
from tests.events.conftest import md_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(api_client, price_catalog):
    """Two events of customer "big" (12,800 µ$) with vendor responses, one of "small"."""
    body = {"events": [md_event("big"), md_event("big"), md_event("small")]}
    assert api_client.post("/api/v1/events", body, format="json").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/admin/events/customer/",
        "/admin/events/customer/?q=big",
        "/admin/events/customer/add/",
        "/admin/events/usageevent/",
        "/admin/events/usageevent/?unpriced__exact=0&source__exact=margindash",
        "/admin/events/ingestsettings/",
        "/admin/events/ingestsettings/add/",
        "/admin/events/feature/",
        "/admin/events/feature/add/",
        "/admin/events/budget/",
        "/admin/events/budget/add/",
        "/admin/events/budgetalert/",
        "/admin/events/blockliststate/",
    ],
)
def test_admin_pages_load(admin_client_logged_in, ledger, url):
    assert admin_client_logged_in.get(url).status_code == 200


def test_a_usage_event_is_shown_read_only_with_its_vendor_responses(admin_client_logged_in, ledger):
    event = UsageEvent.objects.first()

    page = admin_client_logged_in.get(f"/admin/events/usageevent/{event.pk}/change/")

    assert page.status_code == 200
    assert "openai/gpt-4o" in page.content.decode()
    assert admin_client_logged_in.post(f"/admin/events/usageevent/{event.pk}/change/", {}).status_code == 403


def test_a_budget_added_and_deleted_in_admin_moves_the_blocklist_at_once(
    admin_client_logged_in, ledger, api_client, organization
):
    form = {
        "organization": organization.pk,
        "name": "big spender",
        "scope": "customer",
        "scope_value": "big",
        "limit_usd": "0.01",  # entered in dollars: 10,000 microdollars
        "period": "month",
        "action": "block",
        "enabled": "on",
    }
    added = admin_client_logged_in.post("/admin/events/budget/add/", form)

    assert added.status_code == 302, added.content.decode()[-2000:]
    blocklist = api_client.get("/api/v1/budgets/blocklist").json()
    assert (blocklist["version"], blocklist["blocked"]["customer_ids"]) == (1, ["big"])

    budget = Budget.objects.get()
    deleted = admin_client_logged_in.post(f"/admin/events/budget/{budget.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 302
    assert BlocklistState.objects.get(organization=organization).version == 2
    assert api_client.get("/api/v1/budgets/blocklist").json()["blocked"]["customer_ids"] == []


def test_an_organization_budget_with_a_scope_value_is_refused_in_admin(admin_client_logged_in, organization):
    form = {
        "organization": organization.pk,
        "scope": "organization",
        "scope_value": "oops",
        "limit_usd": "0.000001",
        "period": "day",
        "action": "alert",
    }
    response = admin_client_logged_in.post("/admin/events/budget/add/", form)

    assert response.status_code == 200  # the form again, with the error
    assert "budget_organization_scope_has_no_value" in response.content.decode()
    assert not Budget.objects.exists()


def test_the_ledger_cannot_be_deleted_in_admin_one_event_or_in_bulk(admin_client_logged_in, ledger, organization):
    """Deleting would leave the usage rollups (events' and billing's) counting the events."""
    from events.models import UsageDay

    events = list(UsageEvent.objects.order_by("pk"))
    before = {(row.customer_id, row.day): row.event_count for row in UsageDay.objects.filter(organization=organization)}

    single = admin_client_logged_in.post(f"/admin/events/usageevent/{events[0].pk}/delete/", {"post": "yes"})
    listing = admin_client_logged_in.get("/admin/events/usageevent/")
    bulk = admin_client_logged_in.post(
        "/admin/events/usageevent/",
        {"action": "delete_selected", "_selected_action": [e.pk for e in events], "post": "yes"},
    )
    change = admin_client_logged_in.get(f"/admin/events/usageevent/{events[0].pk}/change/")

    assert single.status_code == 403
    assert "delete_selected" not in listing.content.decode()
    assert bulk.status_code in (200, 302)  # the unknown action is refused ("No action selected")
    assert f"/admin/events/usageevent/{events[0].pk}/delete/" not in change.content.decode()
    assert UsageEvent.objects.count() == len(events) == 3
    assert {
        (row.customer_id, row.day): row.event_count for row in UsageDay.objects.filter(organization=organization)
    } == before


def test_the_blocklist_state_is_read_only_in_admin_headroom_included(admin_client_logged_in, organization):
    """Everything on it is derived by the evaluation; an edited headroom would let the evaluation
    after ingest skip a decision it must make."""
    from events.services import blocklist_recompute

    budget = Budget.objects.create(organization=organization, scope="customer", limit_microdollars=100)
    blocklist_recompute(organization=organization)
    state = BlocklistState.objects.get(organization=organization)
    assert state.headroom_microdollars == budget.limit_microdollars

    url = f"/admin/events/blockliststate/{organization.pk}/change/"
    page = admin_client_logged_in.get(url)
    assert page.status_code == 200
    assert 'name="headroom_microdollars"' not in page.content.decode()  # shown, not an input

    admin_client_logged_in.post(url, {"headroom_microdollars": "999999999", "month_spend_microdollars": "0"})
    assert BlocklistState.objects.get(organization=organization).headroom_microdollars == 100
