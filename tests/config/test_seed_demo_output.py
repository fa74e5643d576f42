"""`seed_demo` on a new year's morning: contracts from last month, health computed, and the
login, key and URLs printed last."""

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from billing.models import Contract
from margins.models import CustomerHealth

pytestmark = pytest.mark.django_db


def test_seed_demo_bills_from_last_month_computes_health_and_ends_with_how_to_sign_in():
    out = StringIO()
    with time_machine.travel(datetime(2026, 1, 1, 6, 0, tzinfo=UTC), tick=True):
        call_command("seed_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)

    starts = set(Contract.objects.values_list("starting_at", flat=True))
    assert starts == {datetime(2025, 12, 1, tzinfo=UTC)}
    health = dict(CustomerHealth.objects.values_list("tag_value", "tier"))
    assert set(health) == {"acme-corp", "globex", "initech"}
    assert all(row.period == "2026-01" for row in CustomerHealth.objects.all())

    lines = out.getvalue().splitlines()
    tail = "\n".join(lines[-10:])
    assert lines[-1].startswith("=") and lines[-10].startswith("=")
    assert "Sign in:    http://127.0.0.1:8123/login/   user admin   password tokenledger-demo" in tail
    assert "Dashboard:  http://127.0.0.1:8123/dashboard/" in tail
    assert "API key:    tl_live_" in tail
    assert "http://127.0.0.1:8123/invoices/view/" in tail
