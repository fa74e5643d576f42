"""What every ingest dialect parses into, and what the one ingest core answers.

A dialect (MarginDash, Metronome, Tanso) turns its JSON into `EventDraft`s (or an `EventError` for
an event it rejects) without touching the database; `events.services.ingest.ingest_events` then
resolves customers, prices, writes and answers one `EventOutcome` per draft, in order.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

# How a draft names its customer: "id" is any identifier (external id, ingest alias or our uuid; an
# unknown one creates the customer), "uuid" must be our customer uuid, "stripe" a Stripe customer id
# (an unknown one creates a customer linked to it).
CustomerKind = Literal["id", "uuid", "stripe"]


@dataclass(frozen=True, slots=True)
class CustomerRef:
    kind: CustomerKind
    value: str
    field: str  # where the identifier came from, for error messages


@dataclass(slots=True)
class CallDraft:
    """One model call of an event (a MarginDash vendor response, a Tanso costInput)."""

    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    field: str = ""  # where the call came from, for a pricing error ("events[0].vendor_responses[1]")


@dataclass(slots=True)
class EventDraft:
    customer: CustomerRef
    event_type: str
    occurred_at: datetime
    idempotency_key: str  # already namespaced by dialect (see events.dialects)
    calls: list[CallDraft] = field(default_factory=list)
    properties: dict = field(default_factory=dict)
    properties_json: str = "{}"  # `properties` as JSON text (checked by the dialect, stored as is)
    cost_microdollars: int | None = None  # given by the client; None = compute it
    revenue_microdollars: int | None = None  # given by the client; None = from the feature's price
    usage_units: Decimal | None = None
    feature_key: str = ""
    feature_uuid: str = ""
    flow_id: str = ""
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventError:
    code: str
    message: str
    field: str
    suggestions: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        body = {"code": self.code, "message": self.message, "field": self.field}
        if self.suggestions:
            body["suggestions"] = list(self.suggestions)
        return body


CREATED = "created"
DUPLICATE = "duplicate"
ERROR = "error"


@dataclass(slots=True)
class EventOutcome:
    status: str  # created | duplicate | error
    id: int | None = None
    error: EventError | None = None
    draft: EventDraft | None = None
    customer_id: int | None = None
    cost_microdollars: int | None = None
    revenue_microdollars: int | None = None
    unpriced: bool = False


@dataclass(slots=True)
class IngestResult:
    outcomes: list[EventOutcome]
    budget_state_version: int

    @property
    def created(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == CREATED)

    @property
    def duplicates(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == DUPLICATE)
