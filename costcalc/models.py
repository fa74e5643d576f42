from django.db import models
from django.db.models import F, Q

# 20 decimal places: OpenRouter publishes per-token prices such as "0.00000090000000000000005",
# i.e. 0.90000000000000005 USD per million tokens; the catalog keeps them exactly.
PRICE_FIELD = {"max_digits": 32, "decimal_places": 20}


class PriceSource(models.TextChoices):
    GENAI_PRICES = "genai-prices", "genai-prices package"
    OPENROUTER = "openrouter", "OpenRouter models document"
    OPENROUTER_HISTORY = "openrouter-history", "OpenRouter pricing history"
    MANUAL = "manual", "Entered by an operator"


class PriceFields(models.Model):
    """Per-model unit prices. Token prices are USD per million tokens; None means 'not distinct'."""

    input_per_mtok = models.DecimalField(**PRICE_FIELD, default=0)
    output_per_mtok = models.DecimalField(**PRICE_FIELD, default=0)
    cache_read_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    cache_write_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    reasoning_per_mtok = models.DecimalField(**PRICE_FIELD, null=True, blank=True)
    request_fee_usd = models.DecimalField(**PRICE_FIELD, default=0, help_text="USD per request")
    tiers = models.JSONField(
        default=list, blank=True, help_text="Long-context tiers: prices that apply above a prompt-token threshold"
    )
    effective_from = models.DateTimeField()
    effective_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class ModelPrice(PriceFields):
    """One price period of one model slug (`vendor/model[:variant]`) from one source."""

    slug = models.CharField(max_length=255)
    vendor = models.CharField(max_length=100)
    display_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=32, choices=PriceSource.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["source", "slug", "effective_from"], name="model_price_unique_period"),
            models.CheckConstraint(
                condition=Q(effective_until__isnull=True) | Q(effective_until__gt=F("effective_from")),
                name="model_price_period_not_empty",
            ),
        ]
        indexes = [models.Index(fields=["slug", "effective_from"]), models.Index(fields=["vendor"])]

    def __str__(self) -> str:
        return f"{self.slug} from {self.effective_from:%Y-%m-%d} ({self.source})"


class OrganizationPriceOverride(PriceFields):
    """An organization's own price for a model (seed 003's account default cost config); wins over the catalog."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="price_overrides")
    slug = models.CharField(max_length=255)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug", "effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug", "effective_from"], name="price_override_unique_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization}: {self.slug} from {self.effective_from:%Y-%m-%d}"


class UnpricedModel(models.Model):
    """A model slug seen in an organization's events that the catalog could not price."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="unpriced_models")
    slug = models.CharField(max_length=255)
    event_count = models.BigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="unpriced_model_unique_slug"),
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.event_count} events)"


class CatalogVersion(models.Model):
    """One row whose `version` changes in the same transaction as any change to the price tables.

    Database triggers (migration 0004) set it from a sequence after every INSERT, UPDATE, DELETE or
    TRUNCATE of `ModelPrice` and `OrganizationPriceOverride`, whoever writes (loaders, admin, SQL).
    A process's catalog snapshot is valid while the version it was built at is the current one; a
    sequence never goes back, so a rolled-back change cannot make a stale snapshot look current.
    """

    id = models.SmallIntegerField(primary_key=True, default=1, editable=False)
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"catalog version {self.version}"
