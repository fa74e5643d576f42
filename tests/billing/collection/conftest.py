"""Fixtures of the collection tests (see helpers.py)."""

from decimal import Decimal

import pytest

from billing import services
from tests.billing.collection.helpers import clock, stripe_billing  # noqa: F401  (fixtures)
from tests.billing.conftest import utc


@pytest.fixture
def pricing(organization):
    """Tokens at 50 cents per million, one invoice line per user_id (presentation group)."""
    metric = services.billable_metric_create(
        organization=organization, name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        event_type_filter={"in_values": ["langModel4"]}, group_keys=["user_id"],
    )
    product = services.product_create(
        organization=organization, name="Tokens", billable_metric=metric, presentation_group_key=["user_id"],
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE", "name": "million tokens"},
    )
    rate_card = services.rate_card_create(organization=organization, name="Per user")
    services.rate_create(rate_card=rate_card, product=product, starting_at=utc(2020, 1, 1), price=Decimal(50))
    return {"metric": metric, "product": product, "rate_card": rate_card}
