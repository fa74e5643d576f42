"""Stripe revenue (connection, synced customers and invoices, sync runs), customer mappings, margin
settings, the last health tier seen per customer, and outgoing `margin.threshold_crossed` webhooks.

Synced Stripe objects keep their raw payload (JSONB) next to typed columns and are upserted by their
Stripe id. Revenue per Stripe customer x month x currency is derived from `StripeInvoice` rows.
"""

import uuid
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from accounts.fields import EncryptedTextField


class StripeConnection(models.Model):
    """An organization's Stripe account, reached with a restricted key stored encrypted at rest."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ERROR = "error", "Error (the key stopped authenticating)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="stripe_connection"
    )
    secret_key = EncryptedTextField(help_text="Fernet ciphertext in the database; never shown")
    key_prefix = models.CharField(max_length=64, help_text="Masked key, e.g. rk_live_abcd...wxyz")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    last_error = models.TextField(blank=True)
    # Unix time of the start of the last successful sync: the next one fetches invoices created after it.
    invoices_synced_until = models.BigIntegerField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key_prefix} ({self.organization})"


class StripeCustomer(models.Model):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(StripeConnection, on_delete=models.CASCADE, related_name="customers")
    stripe_id = models.CharField(max_length=255)
    name = models.CharField(max_length=512, blank=True)
    email = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    raw = models.JSONField(default=dict)
    stripe_created = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["organization", "stripe_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "stripe_id"], name="stripe_customer_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.stripe_id} ({self.stripe_id})"


class StripeInvoice(models.Model):
    """A Stripe invoice as last seen. Only `paid` ones count as revenue, and only in USD."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(StripeConnection, on_delete=models.CASCADE, related_name="invoices")
    stripe_id = models.CharField(max_length=255)
    stripe_customer_id = models.CharField(max_length=255)
    status = models.CharField(max_length=32)
    currency = models.CharField(max_length=8)
    amount_paid = models.BigIntegerField(help_text="Minor units of the currency, as Stripe reports it")
    # Null unless the invoice is paid and in USD: exactly the rows that count as revenue.
    amount_paid_microdollars = models.BigIntegerField(null=True, blank=True)
    stripe_created = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    period = models.CharField(max_length=7, blank=True, help_text="YYYY-MM (UTC) of paid_at; blank if unpaid")
    # Set when the invoice is one TokenLedger pushed (billing.collection: metadata.tokenledger_invoice_id):
    # revenue counts one Stripe invoice per invoice of ours, however many carry its id.
    tokenledger_invoice_id = models.CharField(max_length=64, blank=True, db_index=True)
    raw = models.JSONField(default=dict)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["organization", "-stripe_created"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "stripe_id"], name="stripe_invoice_unique_id"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="stripe_invoice_amount_not_negative"),
        ]
        indexes = [
            models.Index(fields=["organization", "period", "stripe_customer_id"], name="stripe_invoice_period"),
            models.Index(fields=["organization", "status"], name="stripe_invoice_status"),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.amount_paid} {self.currency} ({self.status})"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (dashboard)"
        CRON = "cron", "Cron endpoint"
        SCHEDULE = "schedule", "Beat schedule"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(StripeConnection, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    customers_processed = models.IntegerField(default=0)
    periods_updated = models.IntegerField(default=0)
    auto_matches_created = models.IntegerField(default=0)
    invoices_fetched = models.IntegerField(default=0)
    invoices_skipped = models.IntegerField(default=0)
    skipped_currencies = models.JSONField(default=dict, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["organization", "-started_at"], name="sync_run_org_time")]

    def __str__(self) -> str:
        return f"sync {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class CustomerMapping(models.Model):
    """Links a Stripe customer to a usage customer (tag value = the usage customer's external id)."""

    class MatchType(models.TextChoices):
        MANUAL = "manual", "Manual"
        AUTO = "auto", "Automatic"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PENDING = "pending", "Pending review"
        REJECTED = "rejected", "Rejected"

    class Reason(models.TextChoices):
        API = "api", "Set through the API or admin"
        METADATA = "metadata", "Stripe metadata.customer_id"
        STRIPE_ID = "stripe_id", "Same Stripe customer id on the usage customer"
        SIMILARITY = "similarity", "Similar id, email or name"

    DEFAULT_TAG_KEY = "customer"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    stripe_customer_id = models.CharField(max_length=255)
    tag_key = models.CharField(max_length=64, default=DEFAULT_TAG_KEY)
    tag_value = models.CharField(max_length=255)
    match_type = models.CharField(max_length=8, choices=MatchType.choices, default=MatchType.MANUAL)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.API)
    confidence = models.DecimalField(max_digits=4, decimal_places=3, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "stripe_customer_id", "tag_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "stripe_customer_id", "tag_key"], name="customer_mapping_unique_stripe_tag"
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=0, confidence__lte=1),
                name="customer_mapping_confidence_0_1",
            ),
        ]
        indexes = [models.Index(fields=["organization", "status", "tag_value"], name="customer_mapping_tag")]

    def __str__(self) -> str:
        return f"{self.stripe_customer_id} → {self.tag_key}={self.tag_value} ({self.match_type}, {self.status})"


class MarginSettings(models.Model):
    """Health-tier thresholds and the target margin of one organization (percent of revenue)."""

    DEFAULT_HEALTHY_MIN = Decimal("50")
    DEFAULT_AT_RISK_MIN = Decimal("20")
    DEFAULT_TARGET = Decimal("50")

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="margin_settings"
    )
    healthy_min_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=DEFAULT_HEALTHY_MIN,
        help_text="Margin % at or above which a customer is healthy",
    )
    at_risk_min_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=DEFAULT_AT_RISK_MIN,
        help_text="Margin % at or above which (and below healthy) a customer is at risk; below it, critical",
    )
    target_margin_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=DEFAULT_TARGET,
        help_text="The margin budget suggestions aim for",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "margin settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(at_risk_min_percent__lte=models.F("healthy_min_percent")),
                name="margin_settings_tiers_ordered",
            ),
            models.CheckConstraint(
                condition=Q(healthy_min_percent__lte=100, at_risk_min_percent__gte=-100),
                name="margin_settings_tiers_in_range",
            ),
            models.CheckConstraint(
                condition=Q(target_margin_percent__gte=0, target_margin_percent__lt=100),
                name="margin_settings_target_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"margin settings of {self.organization}"


class CustomerHealth(models.Model):
    """The health tier last computed for a customer (tag value), to notice when it changes."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    tag_value = models.CharField(max_length=255)
    period = models.CharField(max_length=7)
    tier = models.CharField(max_length=16)
    margin_percent = models.DecimalField(max_digits=30, decimal_places=1, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "customer health"
        ordering = ["organization", "tag_value"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "tag_value"], name="customer_health_unique_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.tag_value}: {self.tier} ({self.period})"


class WebhookEndpoint(models.Model):
    """A URL of the organization that receives signed margin events."""

    EVENT_THRESHOLD_CROSSED = "margin.threshold_crossed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    secret = EncryptedTextField(help_text="whsec_… signing secret, encrypted at rest")
    event_types = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and (not self.event_types or event_type in self.event_types)


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one endpoint; its id is the webhook-id the receiver sees."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (gave up)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="webhook_delivery_status")]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint} ({self.status})"
