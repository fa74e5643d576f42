"""Vendors' JavaScript clients against the real server: `node --test tests/node/` with the live
server's URL and a key in the environment. The packages come from the npm registry, pinned in
tests/node/package.json and package-lock.json (`npm ci` runs when node_modules is missing or older
than the lock file). Node 20 or newer must be on the PATH.

Metronome's SDK (@metronome/sdk) walks seed 001 through: usage before the customer exists, a
billable metric, a customer with that ingest alias, a product, a rate card and rate, a contract,
and the customer's DRAFT invoice with that usage on it. (MarginDash publishes no JavaScript client
on npm, so only its Python SDK is tested, in test_margindash_sdk.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
import time_machine

from billing.models import Invoice
from events.models import Customer, UsageEvent
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

NODE_DIR = REPO_ROOT / "tests" / "node"
NOW = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)


def node_modules() -> None:
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True)


def test_metronome_sdk_walks_seed_001_to_a_draft_invoice(live_server, api_key, organization):
    assert shutil.which("node"), "Node.js 20+ must be installed (CI installs it)"
    node_modules()
    environment = {
        **os.environ,
        "TOKENLEDGER_BASE_URL": live_server.url,
        "TOKENLEDGER_API_KEY": api_key,
        "CONTRACT_STARTING_AT": "2026-06-01T00:00:00.000Z",
        "EVENT_TIMESTAMP": "2026-06-10T10:15:00.000Z",
    }
    with time_machine.travel(NOW, tick=True):
        completed = subprocess.run(
            ["node", "--test", "--test-reporter=tap", "metronome.test.mjs"],
            cwd=NODE_DIR, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "# pass 2" in completed.stdout and "# fail 0" in completed.stdout, completed.stdout

    # What the SDK did, read from the ledger: one event (the resend deduplicated), owned by the
    # customer created afterwards with that alias, billed on its draft.
    customer = Customer.objects.get(organization=organization, name="Example Team")
    assert customer.ingest_aliases == ["team@example.com"]
    assert UsageEvent.objects.filter(organization=organization, customer=customer).count() == 1
    draft = Invoice.objects.get(customer=customer, status=Invoice.Status.DRAFT)
    assert (draft.total_cents, draft.period_start) == (50, datetime(2026, 6, 1, tzinfo=UTC))
