"""The demo's usage goes through the real ingest service and prices from the catalog."""

from io import StringIO

import pytest
from django.core.management import call_command

from events.models import BudgetAlert, UsageEvent, VendorResponse

pytestmark = pytest.mark.django_db


@pytest.mark.clock
def test_seed_demo_ingests_priced_usage_once():
    first, second = StringIO(), StringIO()
    call_command("seed_demo", stdout=first)
    stored = UsageEvent.objects.count()
    call_command("seed_demo", stdout=second)

    assert stored == 31 * (6 + 12 + 4 + 5)
    assert UsageEvent.objects.count() == stored  # fixed idempotency keys: nothing new the second time
    assert "0 new demo events" in second.getvalue()
    assert not VendorResponse.objects.filter(cost_microdollars__isnull=True).exists()
    assert set(UsageEvent.objects.values_list("customer__external_id", flat=True)) == {"acme-corp", "globex", "initech"}
    assert UsageEvent.objects.filter(customer__external_id="globex").first().cost_microdollars > 0
    assert BudgetAlert.objects.exists()  # Globex's daily alert budget is reached today
