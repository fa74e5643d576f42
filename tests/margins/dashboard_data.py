"""One organization's worth of margins data for the dashboard's page and browser tests.

The clock is meant to be frozen at NOW (2026-04-20 12:00 UTC) by the caller; the data covers
February to April 2026: two mapped Stripe customers with paid invoices, a customer whose revenue is
on its events, a customer with cost only and a pending auto-match, an unmatched Stripe customer,
a contract with a live draft for Acme and a monthly budget on Acme.
"""

from datetime import UTC, datetime
from decimal import Decimal

from billing import services as billing_services
from billing.invoicing import customer_drafts_recompute
from billing.models import BillableMetric
from events.models import Budget
from events.services import budget_create
from margins import services
from margins.models import CustomerMapping
from tests.factories import CustomerFactory
from tests.margins.conftest import record_usage
from tests.margins.test_views_margins import month, paid_invoice, stripe_customer

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
PERIOD = "2026-04"


def build(organization) -> dict:
    acme = CustomerFactory(organization=organization, external_id="acme-corp", name="Acme Corp", email="ap@acme.test")
    beta = CustomerFactory(organization=organization, external_id="beta", name="Beta")
    gamma = CustomerFactory(organization=organization, external_id="gamma", name="Gamma Inc")
    delta = CustomerFactory(organization=organization, external_id="delta", name="Delta Labs")
    stripe_customer(organization, "cus_acme", name="Acme Corp")
    stripe_customer(organization, "cus_beta", name="Beta Co")
    stripe_customer(organization, "cus_delta", name="Delta Laboratories")
    stripe_customer(organization, "cus_unmatched", name="Lonely Ltd", email="ap@lonely.example")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_acme", tag_value="acme-corp")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_beta", tag_value="beta")
    pending = CustomerMapping.objects.create(
        organization=organization, stripe_customer_id="cus_delta", tag_value="delta",
        match_type=CustomerMapping.MatchType.AUTO, status=CustomerMapping.Status.PENDING,
        reason=CustomerMapping.Reason.SIMILARITY, confidence=Decimal("0.870"),
    )

    rate_card = billing_services.rate_card_create(organization=organization, name="Standard")
    metric = billing_services.billable_metric_create(
        organization=organization, name="LLM calls", aggregation_type=BillableMetric.AggregationType.COUNT,
        event_type_filter={"in_values": ["llm.call"]},
    )
    product = billing_services.product_create(organization=organization, name="LLM calls", billable_metric=metric)
    billing_services.rate_create(
        rate_card=rate_card, product=product, starting_at=datetime(2026, 1, 1, tzinfo=UTC), price=Decimal("20")
    )
    billing_services.contract_create(
        organization=organization, customer=acme, rate_card=rate_card, starting_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    budget_create(
        organization=organization, name="Acme monthly", scope=Budget.Scope.CUSTOMER, scope_value="acme-corp",
        limit_microdollars=50_000_000, period=Budget.Period.MONTH, action=Budget.Action.ALERT,
    )

    for period, revenue, cost in (("2026-02", 9000, 25), ("2026-03", 9500, 28), ("2026-04", 10000, 30)):
        paid_invoice(organization, "cus_acme", cents=revenue, when=month(period))
        big = cost * 1_000_000 * 2 // 3
        small = cost * 1_000_000 - big
        record_usage(acme, when=month(period), cost=big, models=[("openai/gpt-4o", big)])
        record_usage(acme, when=month(period, 11), cost=small, models=[("openai/gpt-4o-mini", small)])
    paid_invoice(organization, "cus_beta", cents=10000, when=month("2026-04"))
    record_usage(beta, when=month("2026-04", 12), cost=60_000_000, models=[("anthropic/claude-3.5-sonnet", 60_000_000)])
    record_usage(gamma, when=month("2026-04", 15), cost=9_000_000, revenue=10_000_000,
                 models=[("openai/gpt-4o-mini", 9_000_000)])
    record_usage(delta, when=month("2026-04", 3), cost=4_500, models=[("openai/gpt-4o-mini", 4_500)])
    paid_invoice(organization, "cus_unmatched", cents=5000, when=month("2026-04"))
    customer_drafts_recompute(customer_id=acme.pk, now=NOW)
    return {"acme": acme, "beta": beta, "gamma": gamma, "delta": delta, "pending": pending}
