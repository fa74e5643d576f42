"""Every model slug of seed 000 is priced, from the OpenRouter pricing history alone (no database)."""

import json
from datetime import UTC, datetime
from decimal import Decimal

from costcalc.engine import CatalogSnapshot
from costcalc.sources import parse_openrouter_history

from ._shared import PRICING_HISTORY, seed_slugs, shared_file

EVENT_AT = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def test_seed_names_381_distinct_slugs():
    assert len(seed_slugs()) == 381


def test_each_seed_slug_prices_an_event_on_2026_04_01():
    document = json.loads(shared_file(PRICING_HISTORY).read_text(), parse_float=Decimal)
    snapshot = CatalogSnapshot(parse_openrouter_history(document).records)
    unpriced = []
    for slug in seed_slugs():
        try:
            cost = snapshot.cost_microdollars(slug, EVENT_AT, input_tokens=1_000, output_tokens=1_000)
        except LookupError as error:
            unpriced.append((slug, str(error)))
            continue
        record = snapshot.price_as_of(slug, EVENT_AT)
        if slug.endswith(":free") or (record.input_per_mtok == 0 and record.output_per_mtok == 0):
            assert cost == 0
        else:
            assert cost > 0, slug  # never a silent $0
    assert unpriced == []
