"""Collection through Stripe: per-customer billing configuration and each finalized invoice's Stripe twin.

`billing/models.py` imports this module, so Django registers these models in the billing app (as it
does for billing/credits/models.py).

- `CustomerBillingConfig`: whether and how a customer is billed through the organization's Stripe
  account (the `StripePaymentAccount` top-ups already use): currency, collection method, auto-advance,
  whether $0 invoices are sent.
- `ExternalInvoice`: one per finalized invoice of such a customer, created in the finalization
  transaction. Its `state` walks `pending -> sent -> finalized` (or `skipped` for a $0 invoice that is
  not sent); `error` holds the last permanent failure, shown in admin and the API until a retry.
  After that, Stripe's webhooks keep `stripe_status` and the amounts up to date. Amounts from Stripe
  are in the currency's minor units, as Stripe reports them; `raw` keeps Stripe's last invoice object.
"""

import uuid

from django.db import models
from django.db.models import Q


class CustomerBillingConfig(models.Model):
    """How one customer's finalized invoices are collected (no row: not billed through Stripe)."""

    class CollectionMethod(models.TextChoices):
        CHARGE_AUTOMATICALLY = "charge_automatically", "Charge the default payment method automatically"
        SEND_INVOICE = "send_invoice", "Email the invoice, payable within days_until_due"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.OneToOneField("events.Customer", on_delete=models.CASCADE, related_name="billing_config")
    bill_through_stripe = models.BooleanField(
        default=False, help_text="Push finalized invoices to the organization's Stripe account to be collected"
    )
    currency = models.CharField(
        max_length=3, default="USD",
        help_text="ISO 4217 code the customer is invoiced in; rate prices are read in hundredths of its unit",
    )
    collection_method = models.CharField(
        max_length=24, choices=CollectionMethod.choices, default=CollectionMethod.CHARGE_AUTOMATICALLY
    )
    days_until_due = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="send_invoice only: days the customer has to pay (1-365)"
    )
    auto_advance = models.BooleanField(
        default=True, help_text="Let Stripe advance the invoice (attempt payment, send emails, retry) by itself"
    )
    send_zero_amount_invoices = models.BooleanField(
        default=False, help_text="Also send invoices whose amount due is 0 (default: they are not sent)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "customer billing configuration"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(collection_method="send_invoice", days_until_due__gte=1, days_until_due__lte=365)
                    | Q(collection_method="charge_automatically", days_until_due__isnull=True)
                ),
                name="billing_config_days_until_due_with_send_invoice",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"), name="billing_config_currency_code"),
        ]

    def __str__(self) -> str:
        how = self.collection_method if self.bill_through_stripe else "not through Stripe"
        return f"{self.customer}: {how} ({self.currency})"


class ExternalInvoice(models.Model):
    """The Stripe invoice of one of our finalized invoices, created exactly once and followed after."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending: not in Stripe yet"
        SENT = "sent", "Sent: Stripe draft with every line"
        FINALIZED = "finalized", "Finalized in Stripe"
        SKIPPED = "skipped", "Not sent ($0)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.PROTECT, related_name="+")
    invoice = models.OneToOneField("billing.Invoice", on_delete=models.CASCADE, related_name="external_invoice")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True, help_text="Last permanent failure; the push stops until a retry")
    attempts = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, help_text="Lower-case, as Stripe writes it")
    sent_total = models.BigIntegerField(
        null=True, blank=True, help_text="Minor units: the sum of the items we sent (what Stripe should total)"
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_invoice_id = models.CharField(max_length=255, blank=True)
    stripe_status = models.CharField(max_length=16, blank=True)
    stripe_number = models.CharField(max_length=64, blank=True)
    hosted_invoice_url = models.URLField(max_length=2000, blank=True)
    invoice_pdf = models.URLField(max_length=2000, blank=True)
    stripe_total = models.BigIntegerField(null=True, blank=True, help_text="Minor units, as Stripe last reported")
    amount_due = models.BigIntegerField(null=True, blank=True, help_text="Minor units")
    amount_paid = models.BigIntegerField(default=0, help_text="Minor units")
    amount_remaining = models.BigIntegerField(null=True, blank=True, help_text="Minor units")
    due_at = models.DateTimeField(null=True, blank=True, help_text="Stripe's due date (send_invoice)")
    stripe_finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    payment_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="Last invoice.payment_failed not followed by a payment"
    )
    last_payment_error = models.TextField(blank=True)
    last_event_id = models.CharField(max_length=255, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "Stripe invoice"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "stripe_invoice_id"], condition=~Q(stripe_invoice_id=""),
                name="external_invoice_unique_stripe_id",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "skipped"]) | ~Q(stripe_invoice_id=""),
                name="external_invoice_sent_has_stripe_id",
            ),
        ]
        indexes = [models.Index(fields=["state", "updated_at"], name="external_invoice_state")]

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id or 'not in Stripe'} ({self.state})"

    @property
    def failed(self) -> bool:
        return bool(self.error)
