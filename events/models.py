import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q


class Customer(models.Model):
    """A customer of an organization, the one its usage and revenue are attributed to.

    Identifiers: `external_id` (the organization's own id: MarginDash/Tanso `customer_id` /
    `customerReferenceId`), `uuid` (ours: Metronome/Tanso `customerId`), any of `ingest_aliases`
    (Metronome), and `stripe_customer_id`.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="customers")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(blank=True)
    ingest_aliases = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    # NULL (not "") when unknown, so the partial unique constraint below ignores customers without one.
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "external_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="customer_unique_external_id"),
            models.UniqueConstraint(
                fields=["organization", "stripe_customer_id"],
                condition=Q(stripe_customer_id__isnull=False),
                name="customer_unique_stripe_id",
            ),
        ]
        indexes = [GinIndex(fields=["ingest_aliases"], name="customer_aliases_gin")]

    def __str__(self) -> str:
        return self.name or self.external_id


class UsageEvent(models.Model):
    """One usage event in the ledger, whatever dialect it arrived in. Unique per (organization,
    idempotency key): `UsageEventKey` holds the keys, written by ingest in the statement that inserts
    the events.

    The table is range-partitioned by month on `occurred_at` (migration 0012; `events_usageevent_pYYYY_MM`
    plus a DEFAULT partition, managed by events.services.partitions). In the database its primary key
    is (id, occurred_at), as PostgreSQL requires the partition key in every unique constraint; `id`
    alone comes from one sequence and stays unique, and Django keeps treating it as the primary key.
    A read that knows the time of the rows it wants bounds `occurred_at`, so it touches only their
    partitions."""

    class Source(models.TextChoices):
        MARGINDASH = "margindash", "MarginDash /api/v1/events"
        METRONOME = "metronome", "Metronome /api/v1/ingest"
        TANSO = "tanso", "Tanso /api/v1/usage-events"
        INTERNAL = "internal", "Created by TokenLedger"

    # No single-column indexes on these foreign keys: the composite indexes below lead with them, and
    # every index is paid for on each ingested row. The organization is a tenant column, not a
    # database-enforced reference (db_constraint=False): see "The ledger's references" in
    # ARCHITECTURE.md. Deleting an organization still cascades here, through Django.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    # Not a database constraint either: the ledger lock keeps a customer from being deleted while an
    # ingest that resolved it is open (events.locks, and the guard trigger of migration 0007).
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="usage_events", db_index=False, db_constraint=False
    )
    event_type = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255)
    source = models.CharField(max_length=16, choices=Source.choices)
    properties = models.JSONField(default=dict, blank=True)
    flow_id = models.CharField(max_length=255, blank=True)
    feature_key = models.CharField(max_length=255, blank=True)
    usage_units = models.DecimalField(max_digits=30, decimal_places=9, null=True, blank=True)
    cost_microdollars = models.BigIntegerField(default=0)
    revenue_microdollars = models.BigIntegerField(default=0)
    unpriced = models.BooleanField(default=False, help_text="Some of its model calls could not be priced")
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(cost_microdollars__gte=0), name="usage_event_cost_not_negative"),
            models.CheckConstraint(condition=Q(revenue_microdollars__gte=0), name="usage_event_revenue_not_negative"),
        ]
        indexes = [
            models.Index(fields=["organization", "customer", "occurred_at"], name="usage_event_customer_time"),
            models.Index(fields=["organization", "occurred_at"], name="usage_event_org_time"),
            models.Index(fields=["organization", "event_type", "occurred_at"], name="usage_event_type_time"),
            models.Index(fields=["customer", "id"], name="usage_event_customer_id"),
            # A rebuild's id-keyed chunks of one organization (migration 0014 says why).
            models.Index(fields=["organization", "id"], name="usage_event_org_id"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} for {self.customer_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class UsageEventKey(models.Model):
    """An idempotency key taken in an organization's ledger, with the event stored under it: the
    ledger's dedupe. Its own table because a partitioned ledger cannot hold a unique constraint
    without the partition key, and (organization, key, occurred_at) would not stop a resend whose
    `occurred_at` differs. Ingest inserts the keys and the events in one statement
    (events.services.ingest), so a key exists exactly when its event was stored. Keys stay when
    their month is detached (a resend is still a duplicate); deleting a customer frees its keys
    (events.receivers). `occurred_at` lets a lookup by key read the event from its partition only."""

    pk = models.CompositePrimaryKey("organization_id", "idempotency_key")
    organization_id = models.UUIDField()
    idempotency_key = models.CharField(max_length=255)
    event_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.idempotency_key} -> event {self.event_id}"


class LedgerMonth(models.Model):
    """A month of the ledger whose partition was detached (events.services.partitions): its events
    left the ledger, the usage rollups keep their sums. A rebuild of the usage rollups does not reach
    back past the newest one (`ledger_horizon`)."""

    month = models.DateField(primary_key=True, help_text="First day of the month (UTC)")
    table_name = models.CharField(max_length=63, help_text="The detached table, kept for archiving")
    event_count = models.BigIntegerField(default=0)
    detached_at = models.DateTimeField()

    class Meta:
        ordering = ["month"]
        verbose_name = "detached ledger month"

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} detached ({self.table_name})"


class VendorResponse(models.Model):
    """One model call inside a usage event: the model, its token counts and what it cost."""

    # References written only by ingest, in the statement that inserts the event itself, from ids it
    # has just read: not enforced by the database (db_constraint=False; see "The ledger's
    # references" in ARCHITECTURE.md). Django still cascades and protects on delete.
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )  # covered by vendor_response_org_model
    event = models.ForeignKey(
        UsageEvent, on_delete=models.CASCADE, related_name="vendor_responses", db_constraint=False
    )
    model = models.CharField(max_length=255)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_microdollars = models.BigIntegerField(null=True, blank=True, help_text="Null when the model was unpriced")
    price = models.ForeignKey(
        "costcalc.ModelPrice", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    # Almost always null: indexed only where set (vendor_response_override), so the calls priced
    # from the catalog add no entry to it.
    price_override = models.ForeignKey(
        "costcalc.OrganizationPriceOverride",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )  # enforced by the database: a null reference (nearly every row) costs no check

    class Meta:
        ordering = ["event", "id"]
        indexes = [
            models.Index(fields=["organization", "model"], name="vendor_response_org_model"),
            models.Index(
                fields=["price_override"],
                condition=Q(price_override__isnull=False),
                name="vendor_response_override",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.input_tokens}+{self.output_tokens} tokens)"


class IngestSettings(models.Model):
    """Per-organization ingest choices, edited in admin. Absent row = defaults."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, primary_key=True, related_name="ingest_settings"
    )
    accept_unpriced_models = models.BooleanField(
        default=False,
        help_text=(
            "Store events whose model the price catalog cannot price (cost left unknown and listed under "
            "unpriced models) instead of rejecting them with suggestions."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "ingest settings"
        verbose_name_plural = "ingest settings"

    def __str__(self) -> str:
        return f"Ingest settings of {self.organization}"


class Feature(models.Model):
    """A billable feature (seed 003): the cost and price of one usage unit, used when an event brings
    neither a cost nor a revenue amount of its own (cost = cost per unit x usageUnits, revenue = price
    per unit x usageUnits). Prices are Decimal USD per unit."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="features")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    cost_per_unit_usd = models.DecimalField(
        max_digits=24, decimal_places=12, null=True, blank=True, help_text="Provider cost of one unit, USD"
    )
    price_per_unit_usd = models.DecimalField(
        max_digits=24, decimal_places=12, null=True, blank=True, help_text="What one unit is charged, USD"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "key"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="feature_unique_key"),
            models.CheckConstraint(
                condition=Q(cost_per_unit_usd__isnull=True) | Q(cost_per_unit_usd__gte=0),
                name="feature_cost_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(price_per_unit_usd__isnull=True) | Q(price_per_unit_usd__gte=0),
                name="feature_price_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.key


class Budget(models.Model):
    """A spending limit on the cost of usage (seed 000). Scope `organization`: everything; `event_type`
    or `customer`: the one named by `scope_value` (a customer's external id), or each one separately
    when `scope_value` is blank. Action `block` puts what is over budget on the SDK blocklist; both
    actions record a `BudgetAlert` once per period and subject."""

    class Scope(models.TextChoices):
        ORGANIZATION = "organization", "Organization"
        EVENT_TYPE = "event_type", "Event type"
        CUSTOMER = "customer", "Customer"

    class Period(models.TextChoices):
        DAY = "day", "Day (UTC)"
        MONTH = "month", "Calendar month (UTC)"

    class Action(models.TextChoices):
        BLOCK = "block", "Block"
        ALERT = "alert", "Alert only"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(max_length=255, blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    scope_value = models.CharField(
        max_length=255, blank=True, help_text="Event type or customer external id; blank = each one separately"
    )
    limit_microdollars = models.BigIntegerField(help_text="Cost limit per period, in microdollars (1e-6 USD)")
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTH)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BLOCK)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "scope", "scope_value", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(limit_microdollars__gte=0), name="budget_limit_not_negative"),
            models.CheckConstraint(
                condition=~Q(scope="organization") | Q(scope_value=""), name="budget_organization_scope_has_no_value"
            ),
        ]

    def __str__(self) -> str:
        subject = self.scope_value or ("all" if self.scope == self.Scope.ORGANIZATION else "each")
        return self.name or f"{self.scope} {subject}: {self.limit_microdollars} µ$ per {self.period}"


class BudgetAlert(models.Model):
    """A budget found reached: one row per budget, period and subject (visible in admin)."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    subject = models.CharField(max_length=255, blank=True, help_text="Event type or customer external id")
    action = models.CharField(max_length=8, choices=Budget.Action.choices)
    spent_microdollars = models.BigIntegerField()
    limit_microdollars = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period_start", "subject"], name="budget_alert_once_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.budget} reached for {self.subject or 'organization'} ({self.period_start:%Y-%m-%d})"


class BlocklistState(models.Model):
    """The SDK blocklist of one organization. `version` grows only when `blocked` changes."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, primary_key=True, related_name="blocklist_state"
    )
    version = models.BigIntegerField(default=0)
    blocked = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    # External ids of the customers the organization's own customer budgets block (a part of
    # `blocked`): an evaluation after ingest re-decides only the customers whose usage changed.
    budget_customer_ids = models.JSONField(default=list, blank=True)
    # What the last evaluation saw: the least further spend that could reach a budget not reached yet
    # (events.budgeting.budget_headroom; null: unbounded or unknown) and the organization's spend in
    # the month then. While the organization has spent less than the headroom since, in the same UTC
    # day, the evaluation after ingest has nothing to decide and is skipped.
    headroom_microdollars = models.DecimalField(max_digits=39, decimal_places=0, null=True, blank=True)
    month_spend_microdollars = models.DecimalField(max_digits=39, decimal_places=0, null=True, blank=True)

    class Meta:
        verbose_name = "blocklist state"

    def __str__(self) -> str:
        return f"Blocklist of {self.organization} (version {self.version})"


# --------------------------------------------------------------------------------------------
# Usage rollups: what the reads (margins, budgets, spending limits, pages) sum instead of the ledger.
# Maintained by ingest inside its write statement (events.services.rollups), so they commit or roll
# back with the events; rebuilt from the ledger by `rebuild_usage_rollups`. Days are UTC dates.
# Sums of money and tokens are numeric (a day's sum of bigint amounts may exceed a bigint); counts
# are bigint. The references carry no database constraint, as the ledger's (ARCHITECTURE.md, "The
# ledger's references"); deleting a customer deletes its rows through Django.


class UsageDay(models.Model):
    """Per organization, customer, UTC day and event type: events, their cost and revenue."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    event_type = models.CharField(max_length=255)
    event_count = models.BigIntegerField(default=0)
    cost_microdollars = models.DecimalField(max_digits=39, decimal_places=0, default=0)
    revenue_microdollars = models.DecimalField(max_digits=39, decimal_places=0, default=0)
    # Computed by PostgreSQL. The index of the rows with revenue is partial on this flag, not on the
    # amount: an index (or its predicate) naming a column that an update changes makes PostgreSQL
    # write a new entry in every index of the table (no HOT update). Ingest adds to the amounts of
    # these rows with every batch; the flag turns true once and then stays, so those updates can be
    # HOT (they were none, with the predicate on the amount).
    has_revenue = models.GeneratedField(
        expression=Q(revenue_microdollars__gt=0), output_field=models.BooleanField(), db_persist=True
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "customer", "day", "event_type"], name="usage_day_key"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "day"], name="usage_day_org_day"),
            # Margins list the customers with revenue in a month: only those rows are in this index.
            models.Index(
                fields=["organization", "day"], condition=Q(has_revenue=True), name="usage_day_org_day_revenue"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of customer {self.customer_id} on {self.day}"


class ModelUsageDay(models.Model):
    """Per organization, customer, UTC day (of the event) and model: calls, their cost and tokens."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    model = models.CharField(max_length=255)
    request_count = models.BigIntegerField(default=0)
    cost_microdollars = models.DecimalField(max_digits=39, decimal_places=0, default=0)  # unpriced calls add 0
    input_tokens = models.DecimalField(max_digits=39, decimal_places=0, default=0)
    output_tokens = models.DecimalField(max_digits=39, decimal_places=0, default=0)
    cached_input_tokens = models.DecimalField(max_digits=39, decimal_places=0, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "customer", "day", "model"], name="model_usage_day_key"),
        ]
        indexes = [models.Index(fields=["organization", "day"], name="model_usage_day_org_day")]

    def __str__(self) -> str:
        return f"{self.model} of customer {self.customer_id} on {self.day}"


class OrganizationUsageDay(models.Model):
    """Per organization, UTC day, event type and shard, over all customers (organization and
    event-type budgets read a month in at most 31 x ORGANIZATION_SHARDS rows per event type). Each
    ingest connection adds to its own shard, so concurrent batches of one organization do not wait
    for each other's commit on one row; reads sum the shards. See ARCHITECTURE.md, "Usage rollups"."""

    ORGANIZATION_SHARDS = 8

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    day = models.DateField()
    event_type = models.CharField(max_length=255)
    # The ingest connection's backend pid modulo ORGANIZATION_SHARDS (0 for rebuilt rows). A shard's
    # sums may be negative after a customer's deletion (taken out of shard 0); only their sum is read.
    shard = models.SmallIntegerField(db_default=0)
    event_count = models.BigIntegerField(default=0)
    cost_microdollars = models.DecimalField(max_digits=39, decimal_places=0, default=0)
    revenue_microdollars = models.DecimalField(max_digits=39, decimal_places=0, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "event_type", "shard"], name="organization_usage_day_shard_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} on {self.day}"


class BudgetPendingCustomer(models.Model):
    """A customer whose usage changed since the organization's budgets were last evaluated. Ingest
    adds one (in its write statement) when the organization has something watching its usage; the
    evaluation takes them (DELETE … RETURNING) and evaluates those customers only."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "customer"], name="budget_pending_customer_key"),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} to evaluate"
