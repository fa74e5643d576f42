"""GET /api/margins (JSON and CSV), /api/margins/{customer}, /api/margins/unmatched, /api/margin-settings."""

import csv
import io
import itertools
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from margins import calculations, services
from margins.models import CustomerMapping, StripeConnection, StripeCustomer, StripeInvoice
from tests.factories import CustomerFactory, OrganizationFactory
from tests.margins.conftest import record_usage

pytestmark = pytest.mark.django_db

_ids = itertools.count()


def _connection(organization) -> StripeConnection:
    connection, _ = StripeConnection.objects.get_or_create(
        organization=organization,
        defaults={"secret_key": "rk_live_4eC39HqLyjWDarjtT1zdp7dc", "key_prefix": "rk_live_4eC3...p7dc",
                  "last_synced_at": datetime(2026, 4, 5, 10, 0, tzinfo=UTC)},
    )
    return connection


def stripe_customer(organization, stripe_id, name="", email=""):
    return StripeCustomer.objects.create(
        organization=organization, connection=_connection(organization), stripe_id=stripe_id, name=name, email=email,
        raw={"id": stripe_id}, synced_at=timezone.now(),
    )


def paid_invoice(organization, stripe_customer_id, *, cents: int, when: datetime, currency: str = "usd"):
    """A paid invoice row as the sync stores it."""
    invoice_id = f"in_test{next(_ids)}"
    StripeInvoice.objects.create(
        organization=organization, connection=_connection(organization), stripe_id=invoice_id,
        stripe_customer_id=stripe_customer_id, status="paid", currency=currency, amount_paid=cents,
        amount_paid_microdollars=cents * 10_000 if currency == "usd" else None, stripe_created=when, paid_at=when,
        period=calculations.period_of(when), raw={"id": invoice_id}, synced_at=timezone.now(),
    )


def month(period: str, day: int = 10) -> datetime:
    year, month_number = calculations.parse_period(period)
    return datetime(year, month_number, day, 12, tzinfo=UTC)


@pytest.fixture
def ledger(organization):
    """Acme (healthy, mapped), Beta (at risk, mapped), Gamma (revenue on events only, critical),
    Delta (cost only, unmapped), an EUR invoice, and an unmatched Stripe customer."""
    acme = CustomerFactory(organization=organization, external_id="acme-corp", name="Acme (usage)")
    beta = CustomerFactory(organization=organization, external_id="beta", name="Beta")
    gamma = CustomerFactory(organization=organization, external_id="gamma", name="Gamma Inc")
    delta = CustomerFactory(organization=organization, external_id="delta", name="Delta")
    stripe_customer(organization, "cus_acme", name="Acme Corp")
    stripe_customer(organization, "cus_beta", name="Beta Co")
    stripe_customer(organization, "cus_unmatched", name="Lonely Ltd", email="ap@lonely.example")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_acme", tag_value="acme-corp")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_beta", tag_value="beta")
    for period, revenue, cost in (("2026-02", 9000, 25), ("2026-03", 9500, 28), ("2026-04", 10000, 30)):
        paid_invoice(organization, "cus_acme", cents=revenue, when=month(period))
        big = cost * 1_000_000 * 2 // 3
        small = cost * 1_000_000 - big
        record_usage(acme, when=month(period), cost=big, models=[("gpt-4o", big)])
        record_usage(acme, when=month(period, 11), cost=small, models=[("gpt-4o-mini", small), ("gpt-4o-mini", None)])
    paid_invoice(organization, "cus_beta", cents=10000, when=month("2026-04"))
    record_usage(beta, when=month("2026-04"), cost=60_000_000)
    record_usage(gamma, when=month("2026-04"), cost=9_000_000, revenue=10_000_000)
    record_usage(delta, when=month("2026-04"), cost=15_000_000)
    record_usage(delta, when=month("2026-03"), cost=1_000_000)
    paid_invoice(organization, "cus_unmatched", cents=5000, when=month("2026-04"))
    paid_invoice(organization, "cus_unmatched", cents=700, when=month("2026-04"), currency="eur")
    return organization


def test_margin_table_matches_the_seed_shape_and_math(member_client, ledger):
    response = member_client(role="viewer").get("/api/margins?period=2026-04")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["summary"] == {
        "blendedMarginPercent": 52.9,  # (210 - 99) / 210
        "totalRevenueMicrodollars": 210_000_000,
        "totalCostMicrodollars": 99_000_000,
        "criticalCount": 1,
        "atRiskCount": 1,
        "lastSyncAt": "2026-04-05T10:00:00.000Z",
        "syncStatus": "active",
        "skippedCurrencies": {"eur": 1},
    }
    rows = {row["tagValue"]: row for row in data["customers"]}
    assert set(rows) == {"acme-corp", "beta", "gamma"}
    assert rows["acme-corp"] == {
        "stripeCustomerId": "cus_acme",
        "customerName": "Acme Corp",
        "avatarUrl": None,
        "tagValue": "acme-corp",
        "revenueMicrodollars": 100_000_000,
        "revenueSource": "stripe",
        "costMicrodollars": 30_000_000,
        "marginMicrodollars": 70_000_000,
        "marginPercent": 70,
        "healthTier": "healthy",
        "sparkline": [
            {"period": "2026-02", "marginPercent": 72.2},
            {"period": "2026-03", "marginPercent": 70.5},
            {"period": "2026-04", "marginPercent": 70},
            # revenue 90, 95, 100 → 105; cost 25, 28, 30 → 32.666667: (105 - 32.666667) / 105
            {"period": "2026-05", "marginPercent": 68.9, "projected": True},
        ],
        "projectedTierWorsening": False,
        "budgetSuggestionMicrodollars": None,
    }
    assert rows["beta"]["healthTier"] == "at_risk"
    assert rows["beta"]["marginPercent"] == 40
    assert rows["beta"]["budgetSuggestionMicrodollars"] == 50_000_000  # 100 $ x (1 - 50 %)
    assert rows["gamma"]["stripeCustomerId"] is None
    assert rows["gamma"]["customerName"] == "Gamma Inc"
    assert (rows["gamma"]["healthTier"], rows["gamma"]["marginPercent"]) == ("critical", 10)
    assert rows["gamma"]["budgetSuggestionMicrodollars"] == 5_000_000


def test_projected_tier_worsening_when_costs_climb(member_client, organization):
    customer = CustomerFactory(organization=organization, external_id="climber")
    stripe_customer(organization, "cus_climber")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_climber", tag_value="climber")
    for period, cost in (("2026-02", 10), ("2026-03", 30), ("2026-04", 45)):
        paid_invoice(organization, "cus_climber", cents=10000, when=month(period))
        record_usage(customer, when=month(period), cost=cost * 1_000_000)

    row = member_client().get("/api/margins?period=2026-04").json()["data"]["customers"][0]

    assert row["healthTier"] == "healthy"  # 55 %
    # cost 10, 30, 45 → trend 63.333333; revenue flat at 100
    assert row["sparkline"][-1] == {"period": "2026-05", "marginPercent": 36.7, "projected": True}
    assert row["projectedTierWorsening"] is True


def test_csv_export_has_the_seed_columns_and_file_name(member_client, ledger):
    response = member_client(role="viewer").get("/api/margins?period=2026-04&format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="margins-2026-04.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Customer", "Stripe ID", "Tag Value", "Revenue ($)", "Cost ($)", "Margin (%)", "Margin ($)",
                       "Health Tier"]
    assert rows[1:] == [
        ["Acme Corp", "cus_acme", "acme-corp", "100.00", "30.00", "70.0", "70.00", "healthy"],
        ["Beta Co", "cus_beta", "beta", "100.00", "60.00", "40.0", "40.00", "at_risk"],
        ["Gamma Inc", "", "gamma", "10.00", "9.00", "10.0", "1.00", "critical"],
    ]


def test_csv_neutralizes_spreadsheet_formulas_in_names(member_client, organization):
    CustomerFactory(organization=organization, external_id="evil")
    stripe_customer(organization, "cus_evil", name="=HYPERLINK(\"http://x\")")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_evil", tag_value="evil")

    response = member_client().get("/api/margins?period=2026-04&format=csv")

    assert list(csv.reader(io.StringIO(response.content.decode())))[1][0] == "'=HYPERLINK(\"http://x\")"


@pytest.mark.parametrize(
    "query",
    ["period=2026-13", "period=202604", "period=april", "period=2026-4", "format=xml", "period=%EF%BC%92026-04",
     "period=2026-04%00"],
)
def test_invalid_period_or_format_is_400(member_client, organization, query):
    response = member_client().get(f"/api/margins?{query}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["field"] == query.split("=")[0]


def test_period_defaults_to_the_current_month(member_client, organization):
    customer = CustomerFactory(organization=organization, external_id="now")
    record_usage(customer, when=timezone.now(), cost=1_000_000, revenue=4_000_000)

    data = member_client().get("/api/margins").json()["data"]

    assert [row["tagValue"] for row in data["customers"]] == ["now"]
    assert data["customers"][0]["sparkline"][2]["period"] == calculations.period_of(timezone.now())
    assert data["summary"]["syncStatus"] == "disconnected"
    assert data["summary"]["lastSyncAt"] is None


def test_customer_detail_has_revenue_over_time_and_model_breakdown(member_client, ledger):
    response = member_client(role="viewer").get("/api/margins/acme-corp?period=2026-04")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["stripeCustomerId"] == "cus_acme"
    assert (data["healthTier"], data["marginPercent"]) == ("healthy", 70)
    assert (data["revenueMicrodollars"], data["costMicrodollars"]) == (100_000_000, 30_000_000)
    assert data["revenueOverTime"] == [
        {"period": "2026-02", "revenue": 90_000_000, "revenueSource": "stripe", "cost": 25_000_000},
        {"period": "2026-03", "revenue": 95_000_000, "revenueSource": "stripe", "cost": 28_000_000},
        {"period": "2026-04", "revenue": 100_000_000, "revenueSource": "stripe", "cost": 30_000_000},
    ]
    # Tokens are summed per model (record_usage gives each call 100 in, 50 out).
    assert data["modelBreakdown"] == [
        {"model": "gpt-4o", "cost": 20_000_000, "requestCount": 1, "inputTokens": 100, "outputTokens": 50},
        {"model": "gpt-4o-mini", "cost": 10_000_000, "requestCount": 2, "inputTokens": 200, "outputTokens": 100},
    ]


def test_customer_detail_decodes_url_encoded_tag_values(member_client, organization):
    CustomerFactory(organization=organization, external_id="team a/b")
    CustomerMapping.objects.create(organization=organization, stripe_customer_id="cus_ab", tag_value="team a/b")

    response = member_client().get("/api/margins/team%20a%2Fb?period=2026-04")

    assert response.status_code == 200
    assert response.json()["data"]["tagValue"] == "team a/b"


def test_a_customer_without_a_mapping_is_404_even_with_usage(member_client, ledger):
    # Seed 002: "404 not_found: Customer mapping not found". Gamma (revenue on its events) and Delta
    # (cost only) are in the usage ledger but no Stripe customer is mapped to them.
    for tag in ("gamma", "delta"):
        response = member_client().get(f"/api/margins/{tag}?period=2026-04")
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "not_found", "message": "Customer mapping not found.", "details": {},
        }  # fmt: skip
    assert member_client().get("/api/margins/acme-corp?period=2026-04").status_code == 200


def test_unknown_or_foreign_customer_is_404(member_client, organization):
    other = OrganizationFactory()
    CustomerFactory(organization=other, external_id="theirs")
    CustomerMapping.objects.create(organization=other, stripe_customer_id="cus_t", tag_value="theirs-mapped")

    for tag in ("nobody", "theirs", "theirs-mapped"):
        response = member_client().get(f"/api/margins/{tag}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/margins/%00", "/api/margins/acme%00corp", "/api/margins/a%00?period=2026-04"])
def test_customer_with_a_nul_byte_is_404_not_500(member_client, organization, path):
    CustomerFactory(organization=organization, external_id="acme")

    response = member_client().get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unmatched_lists_stripe_customers_tags_and_pending_matches(member_client, ledger):
    CustomerMapping.objects.create(
        organization=ledger, stripe_customer_id="cus_unmatched", tag_value="delta", match_type="auto",
        status="pending", reason="similarity", confidence="0.72",
    )

    response = member_client(role="viewer").get("/api/margins/unmatched")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["unmatchedStripeCustomers"] == [
        {"stripeCustomerId": "cus_unmatched", "customerName": "Lonely Ltd", "customerEmail": "ap@lonely.example",
         "totalRevenueMicrodollars": 50_000_000},
    ]
    assert data["unmappedTagValues"] == [
        {"tagValue": "delta", "totalCostMicrodollars": 16_000_000, "requestCount": 2},
        {"tagValue": "gamma", "totalCostMicrodollars": 9_000_000, "requestCount": 1},
    ]
    (pending,) = data["pendingAutoMatches"]
    assert pending["stripeCustomerId"] == "cus_unmatched" and pending["confidence"] == 0.72
    assert pending["customerName"] == "Lonely Ltd" and pending["tagValue"] == "delta"
    assert data["customerNames"] == {"cus_acme": "Acme Corp", "cus_beta": "Beta Co", "cus_unmatched": "Lonely Ltd"}


@pytest.mark.parametrize(
    "path", ["/api/margins", "/api/margins/x", "/api/margins/unmatched", "/api/customer-mappings",
             "/api/stripe/revenue-sync", "/api/margin-settings"],
)
def test_free_tier_gets_403_with_upgrade_pointer(member_client, free_organization, path):
    response = member_client(role="owner", org=free_organization).get(path)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"]["required_plan"] == "pro"
    assert error["details"]["upgrade_url"]


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("viewer", "post", "/api/stripe/revenue-sync"),
        ("member", "post", "/api/stripe/connect"),
        ("member", "delete", "/api/stripe/disconnect"),
        ("viewer", "post", "/api/customer-mappings"),
        ("viewer", "delete", "/api/customer-mappings?id=00000000-0000-0000-0000-000000000000"),
        ("viewer", "post", "/api/customer-mappings/00000000-0000-0000-0000-000000000000/approve"),
        ("member", "put", "/api/margin-settings"),
        ("member", "get", "/api/webhook-endpoints"),
        ("owner", "post", "/api/webhook-endpoints"),
    ],
)
def test_free_tier_gets_the_upgrade_pointer_whatever_the_role(member_client, free_organization, role, method, path):
    """The plan gate answers first: a free organization cannot use these at any role, so the 403 says upgrade."""
    response = getattr(member_client(role=role, org=free_organization), method)(path, {}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["details"]["upgrade_url"]
    assert response.json()["error"]["details"]["required_plan"] == "pro"


@pytest.mark.parametrize("path", ["/api/margins", "/api/margins/unmatched", "/api/customer-mappings"])
def test_no_session_is_401(anonymous_client, path):
    response = anonymous_client.get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_tenant_isolation_of_the_margin_table(member_client, ledger):
    other = OrganizationFactory()
    outsider = member_client(role="owner", org=other)

    data = outsider.get("/api/margins?period=2026-04").json()["data"]

    assert data["customers"] == []
    assert data["summary"]["totalRevenueMicrodollars"] == 0
    assert outsider.get("/api/margins/unmatched").json()["data"]["unmatchedStripeCustomers"] == []


# --- margin settings ---------------------------------------------------------------------------


def test_settings_change_the_tiers(member_client, ledger):
    admin = member_client(role="admin")

    response = admin.put(
        "/api/margin-settings", {"healthyMinPercent": 35, "atRiskMinPercent": "5", "targetMarginPercent": 30.5},
        format="json",
    )
    rows = {r["tagValue"]: r for r in admin.get("/api/margins?period=2026-04").json()["data"]["customers"]}

    assert response.status_code == 200
    assert response.json()["data"] == {"healthyMinPercent": 35, "atRiskMinPercent": 5, "targetMarginPercent": 30.5}
    assert rows["beta"]["healthTier"] == "healthy"
    assert rows["gamma"]["healthTier"] == "at_risk"
    assert rows["gamma"]["budgetSuggestionMicrodollars"] == 6_950_000  # 10 $ x (1 - 30.5 %)


def test_settings_defaults_and_validation(member_client, organization):
    assert member_client(role="viewer").get("/api/margin-settings").json()["data"] == {
        "healthyMinPercent": 50, "atRiskMinPercent": 20, "targetMarginPercent": 50,
    }
    inverted = member_client(role="admin").put(
        "/api/margin-settings", {"healthyMinPercent": 10, "atRiskMinPercent": 20}, format="json"
    )
    out_of_range = member_client(role="admin").put("/api/margin-settings", {"targetMarginPercent": 100}, format="json")
    by_member = member_client(role="member").put("/api/margin-settings", {"healthyMinPercent": 10}, format="json")

    assert inverted.status_code == 400 and inverted.json()["error"]["details"]["field"] == "atRiskMinPercent"
    assert out_of_range.status_code == 400 and out_of_range.json()["error"]["details"]["field"] == "targetMarginPercent"
    assert by_member.status_code == 403


def test_period_years_outside_the_supported_range_are_400(member_client, organization):
    assert member_client().get("/api/margins?period=1970-01").status_code == 400
    assert member_client().get("/api/margins?period=9999-12").status_code == 400
    assert member_client().get("/api/margins?period=1971-01").status_code == 200
