"""Shapes of collection through Stripe (our envelope)."""

from rest_framework import serializers

from billing.collection import reconciliation
from billing.collection.models import CustomerBillingConfig, ExternalInvoice


class BillingConfigSerializer(serializers.Serializer):
    """PUT body: the whole configuration (omitted fields take their defaults)."""

    bill_through_stripe = serializers.BooleanField()
    currency = serializers.CharField(min_length=3, max_length=3, default="USD")
    collection_method = serializers.ChoiceField(
        choices=CustomerBillingConfig.CollectionMethod.values,
        default=CustomerBillingConfig.CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    days_until_due = serializers.IntegerField(min_value=1, max_value=365, required=False, allow_null=True)
    auto_advance = serializers.BooleanField(default=True)
    send_zero_amount_invoices = serializers.BooleanField(default=False)
    stripe_customer_id = serializers.CharField(
        max_length=255, required=False, allow_null=True, allow_blank=True,
        help_text="An existing Stripe customer (cus_…); omitted: created on the first invoice",
    )


def billing_config_shape(customer, config: CustomerBillingConfig | None) -> dict:
    return {
        "customer_id": str(customer.uuid),
        "configured": config is not None,
        "bill_through_stripe": bool(config and config.bill_through_stripe),
        "currency": config.currency if config else "USD",
        "collection_method": (
            config.collection_method if config else CustomerBillingConfig.CollectionMethod.CHARGE_AUTOMATICALLY
        ),
        "days_until_due": config.days_until_due if config else None,
        "auto_advance": config.auto_advance if config else True,
        "send_zero_amount_invoices": bool(config and config.send_zero_amount_invoices),
        "stripe_customer_id": customer.stripe_customer_id,
        "updated_at": config.updated_at if config else None,
    }


class BillingConfigShapeSerializer(serializers.Serializer):
    customer_id = serializers.UUIDField()
    configured = serializers.BooleanField()
    bill_through_stripe = serializers.BooleanField()
    currency = serializers.CharField()
    collection_method = serializers.ChoiceField(choices=CustomerBillingConfig.CollectionMethod.values)
    days_until_due = serializers.IntegerField(allow_null=True)
    auto_advance = serializers.BooleanField()
    send_zero_amount_invoices = serializers.BooleanField()
    stripe_customer_id = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)


class ExternalInvoiceSerializer(serializers.ModelSerializer):
    """An invoice's Stripe twin: amounts in the currency's minor units, as Stripe reports them."""

    class Meta:
        model = ExternalInvoice
        fields = [
            "state", "error", "attempts", "currency", "stripe_invoice_id", "stripe_customer_id", "stripe_status",
            "stripe_number", "hosted_invoice_url", "invoice_pdf", "sent_total", "stripe_total", "amount_due",
            "amount_paid", "amount_remaining", "due_at", "paid_at", "payment_failed_at", "last_payment_error",
            "updated_at",
        ]
        read_only_fields = fields


def external_invoice_shape(invoice) -> dict | None:
    try:
        twin = invoice.external_invoice
    except ExternalInvoice.DoesNotExist:
        return None
    return ExternalInvoiceSerializer(twin).data


class ReconciliationFlagSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=list(reconciliation.FLAG_CODES))
    invoice_id = serializers.UUIDField()
    message = serializers.CharField()


class ReconciliationRowSerializer(serializers.Serializer):
    customer_id = serializers.CharField(help_text="The customer's external id")
    customer_name = serializers.CharField(allow_blank=True)
    currency = serializers.CharField()
    billed_through_stripe = serializers.BooleanField()
    invoices = serializers.IntegerField()
    metered_cents = serializers.IntegerField(help_text="Our rating: the invoices' totals, drafts included")
    credits_cents = serializers.IntegerField()
    due_cents = serializers.IntegerField(help_text="Metered minus credits: what should be invoiced")
    invoiced_cents = serializers.IntegerField(help_text="Stripe's totals of the invoices we sent (void: 0)")
    collected_cents = serializers.IntegerField(help_text="What Stripe reports paid")
    outstanding_cents = serializers.IntegerField()
    flags = ReconciliationFlagSerializer(many=True)


class ReconciliationSerializer(serializers.Serializer):
    period = serializers.CharField()
    flag_counts = serializers.DictField(child=serializers.IntegerField())
    customers = ReconciliationRowSerializer(many=True)


def reconciliation_shape(period: str, rows: list[reconciliation.ReconciliationRow]) -> dict:
    return {
        "period": period,
        "flag_counts": reconciliation.flag_counts(rows),
        "customers": [
            {
                "customer_id": row.customer_id,
                "customer_name": row.customer_name,
                "currency": row.currency,
                "billed_through_stripe": row.billed_through_stripe,
                "invoices": row.invoices,
                "metered_cents": row.metered_cents,
                "credits_cents": row.credits_cents,
                "due_cents": row.due_cents,
                "invoiced_cents": row.invoiced_cents,
                "collected_cents": row.collected_cents,
                "outstanding_cents": row.outstanding_cents,
                "flags": [{"code": f.code, "invoice_id": f.invoice_id, "message": f.message} for f in row.flags],
            }
            for row in rows
        ],
    }


CSV_COLUMNS = [
    "customer_id", "customer_name", "currency", "billed_through_stripe", "invoices", "metered_cents",
    "credits_cents", "due_cents", "invoiced_cents", "collected_cents", "outstanding_cents", "flags",
]


def _csv_text(value: str) -> str:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def reconciliation_csv_rows(rows: list[reconciliation.ReconciliationRow]) -> list[list]:
    return [
        [
            _csv_text(row.customer_id), _csv_text(row.customer_name), row.currency,
            "yes" if row.billed_through_stripe else "no",
            row.invoices, row.metered_cents, row.credits_cents, row.due_cents, row.invoiced_cents,
            row.collected_cents, row.outstanding_cents, " ".join(sorted({f.code for f in row.flags})),
        ]
        for row in rows
    ]
