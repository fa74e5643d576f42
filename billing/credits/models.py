"""Prepaid credits (seed 004, per customer): the credit ledger, top-ups, auto top-up, spending limits.

Kept apart from billing's metric/contract/invoice models so the two can evolve without colliding;
`billing/models.py` imports this module, so Django registers these models in the billing app.

Money: integer microdollars (1e-6 USD), signed on ledger entries. A balance is never stored: it is
the sum of a customer's entries. Idempotency lives in the database: one entry per
(customer, kind, reference), so a PaymentIntent or an invoice can be credited or debited only once.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.fields import EncryptedTextField
from costcalc.money import cents_to_microdollars, format_money


class CreditEntry(models.Model):
    """One line of a customer's credit ledger. Append-only: corrections are new adjustment entries."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        TOPUP = "topup", "Top-up"
        DRAWDOWN = "drawdown", "Consumption (invoice drawdown)"
        EXPIRY = "expiry", "Expiry"
        ADJUSTMENT = "adjustment", "Adjustment"

    POSITIVE_KINDS = (Kind.GRANT, Kind.TOPUP)
    NEGATIVE_KINDS = (Kind.DRAWDOWN, Kind.EXPIRY)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.CASCADE, related_name="credit_entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount_microdollars = models.BigIntegerField(help_text="Signed: credit added > 0, used or expired < 0")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Credits added: when what is left expires")
    reference = models.CharField(
        max_length=255,
        help_text="What caused it: PaymentIntent id, invoice id, expired entry id, or a caller's idempotency key",
    )
    description = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        constraints = [
            models.UniqueConstraint(fields=["customer", "kind", "reference"], name="credit_entry_once_per_reference"),
            models.CheckConstraint(
                condition=~Q(kind__in=["grant", "topup"]) | Q(amount_microdollars__gt=0),
                name="credit_entry_additions_positive",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["drawdown", "expiry"]) | Q(amount_microdollars__lt=0),
                name="credit_entry_deductions_negative",
            ),
            models.CheckConstraint(condition=~Q(amount_microdollars=0), name="credit_entry_not_zero"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(amount_microdollars__gt=0),
                name="credit_entry_only_additions_expire",
            ),
            models.CheckConstraint(condition=~Q(reference=""), name="credit_entry_reference_required"),
        ]
        indexes = [models.Index(fields=["customer", "created_at"], name="credit_entry_customer_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_money(self.amount_microdollars)} ({self.reference})"

    @property
    def is_addition(self) -> bool:
        return self.amount_microdollars > 0


class CreditDraw(models.Model):
    """How much a deduction (drawdown, expiry, negative adjustment) took from one addition (a lot).

    A lot's remainder is its amount minus its draws: derived, never stored. Drawdowns also name the
    invoice line they paid (`line_key`), which is what invoices show as `pretax_credit_amounts`.
    """

    entry = models.ForeignKey(CreditEntry, on_delete=models.CASCADE, related_name="draws")
    lot = models.ForeignKey(CreditEntry, on_delete=models.PROTECT, related_name="drawn_by")
    amount_microdollars = models.BigIntegerField()
    line_key = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["entry", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_microdollars__gt=0), name="credit_draw_positive"),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount_microdollars)} from {self.lot_id}"


class StripePaymentAccount(models.Model):
    """The Stripe account an organization charges its customers through (top-ups, auto top-ups).

    Its secret key (`sk_…`) is encrypted at rest; PaymentIntents are created with it. The signing
    secret (`whsec_…`, encrypted too) of the webhook endpoint registered in that account verifies
    what Stripe posts to the organization's own endpoint, `/api/stripe/webhooks/billing/<org id>`.
    """

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="stripe_payment_account"
    )
    secret_key = EncryptedTextField()
    webhook_secret = EncryptedTextField(
        null=True, blank=True, help_text="Signing secret (whsec_…) of this account's billing webhook endpoint"
    )
    key_hint = models.CharField(max_length=16, help_text="Last characters of the key, for humans")
    livemode = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Stripe …{self.key_hint} for {self.organization}"

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret)


class TopUp(models.Model):
    """A Stripe PaymentIntent that buys credits for a customer. Credited once, when it succeeds."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    class Origin(models.TextChoices):
        MANUAL = "manual", "Top-up request"
        AUTO = "auto", "Auto top-up"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.CASCADE, related_name="credit_topups")
    payment_intent_id = models.CharField(max_length=255, unique=True)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_status = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="topup_amount_positive")]

    def __str__(self) -> str:
        return f"{self.payment_intent_id} ({self.status})"


class AutoTopUpConfig(models.Model):
    """Seed 004 `topup_config`: charge `amount` to the saved card when the balance falls below
    `threshold`. Failures are recorded; after AUTO_TOPUP_MAX_FAILURES in a row it disables itself
    (`disabled_reason`) until it is set again."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.OneToOneField("events.Customer", on_delete=models.CASCADE, related_name="auto_topup_config")
    amount_microdollars = models.BigIntegerField()
    threshold_microdollars = models.BigIntegerField()
    error = models.TextField(blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=255, blank=True)
    revision = models.PositiveIntegerField(default=1, help_text="Incremented each time the config is set")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_microdollars__gt=0), name="auto_topup_amount_positive"),
            models.CheckConstraint(
                condition=Q(threshold_microdollars__gte=0), name="auto_topup_threshold_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"auto top-up {format_money(self.amount_microdollars)} below {format_money(self.threshold_microdollars)}"

    @property
    def active(self) -> bool:
        return not self.disabled_reason


class AutoTopUpAttempt(models.Model):
    """One off-session charge decided by the auto top-up. `trigger_key` makes each decision unique,
    so concurrent evaluations of the same low balance charge the card once."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.CASCADE, related_name="auto_topup_attempts")
    trigger_key = models.CharField(max_length=255)
    amount_microdollars = models.BigIntegerField()
    balance_microdollars = models.BigIntegerField(help_text="Balance that triggered it")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    topup = models.OneToOneField(TopUp, null=True, blank=True, on_delete=models.SET_NULL, related_name="auto_attempt")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "trigger_key"], name="auto_topup_attempt_once_per_trigger"),
        ]

    def __str__(self) -> str:
        return f"auto top-up {self.trigger_key} ({self.status})"


class SpendingLimit(models.Model):
    """Seed 004 spending limit: block the customer (SDK blocklist) once it spends `amount` in the
    window given by `duration` (daily/weekly/monthly) and `strategy` (fixed calendar period or a
    sliding window ending now), the values Cloudflare's API takes."""

    class Duration(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    class Strategy(models.TextChoices):
        FIXED = "fixed", "Fixed (calendar period, UTC)"
        SLIDING = "sliding", "Sliding (window ending now)"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.OneToOneField("events.Customer", on_delete=models.CASCADE, related_name="spending_limit")
    amount_microdollars = models.BigIntegerField()
    duration = models.CharField(max_length=8, choices=Duration.choices)
    strategy = models.CharField(max_length=8, choices=Strategy.choices, default=Strategy.FIXED)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_microdollars__gt=0), name="spending_limit_amount_positive"),
            models.CheckConstraint(
                condition=Q(duration__in=["daily", "weekly", "monthly"]), name="spending_limit_duration"
            ),
            models.CheckConstraint(condition=Q(strategy__in=["fixed", "sliding"]), name="spending_limit_strategy"),
        ]

    def __str__(self) -> str:
        return f"{self.amount_microdollars} µ$ per {self.duration} ({self.strategy})"


class StripeWebhookEvent(models.Model):
    """A Stripe webhook delivery to a billing endpoint, kept with its outcome (and redeliveries).

    `endpoint_organization` is the organization whose own endpoint received it (verified with its
    account's secret), null for the global endpoint. Event ids are unique per endpoint, so an event
    posted to one organization's endpoint can never shadow the same id arriving at another's.
    `organization` is whose top-up the event concerned, once handled.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255)
    endpoint_organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Received at this organization's own endpoint (empty: the global endpoint)",
    )
    type = models.CharField(max_length=255)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    payload = models.JSONField()
    deliveries = models.PositiveIntegerField(default=1)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id"], condition=Q(endpoint_organization__isnull=True),
                name="stripe_webhook_event_once_global",
            ),
            models.UniqueConstraint(
                fields=["endpoint_organization", "event_id"], condition=Q(endpoint_organization__isnull=False),
                name="stripe_webhook_event_once_per_endpoint",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id} ({self.status})"


class InvoiceCredit(models.Model):
    """Credit applied to one invoice line before tax (seed 004 `pretax_credit_amounts`).

    Rewritten with every draft recompute (the lines are rebuilt then); at finalization the ledger's
    drawdown entry is written once and linked here, and the rows stop changing.
    """

    invoice = models.ForeignKey("billing.Invoice", on_delete=models.CASCADE, related_name="line_credits")
    line = models.OneToOneField("billing.InvoiceLine", on_delete=models.CASCADE, related_name="credit")
    amount_cents = models.BigIntegerField()
    entry = models.ForeignKey(
        CreditEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="invoice_credits",
        help_text="The drawdown entry, once the invoice is finalized",
    )

    class Meta:
        ordering = ["invoice", "line"]
        constraints = [models.CheckConstraint(condition=Q(amount_cents__gt=0), name="invoice_credit_positive")]

    def __str__(self) -> str:
        return f"{format_money(cents_to_microdollars(self.amount_cents))} on line {self.line_id}"
