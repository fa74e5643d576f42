"""Create (or refresh) the demo organization: a Pro org, an admin user, an API key, customers, and
30 days of AI usage for them sent through the real ingest service (MarginDash dialect, priced by
the catalog), plus an alert budget, and billing configuration: per-request billable metrics,
products, a rate card and a contract per customer starting on the first day of last month, so live
draft invoices show the usage. Customer health (margins) is computed at the end, so the dashboard and
the admin show tiers without a Stripe sync.

Idempotent: running it again reuses what exists (usage has fixed idempotency keys, so it is stored
once) and prints a fresh API key (the previous demo key is revoked, since a key's secret cannot be
shown twice).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Organization, Role
from accounts.services import api_key_create, api_key_revoke, membership_set, organization_get_or_create
from billing import services as billing_services
from billing.invoicing import customer_drafts_recompute
from billing.models import BillableMetric, Contract, Invoice, RateCard
from costcalc.models import ModelPrice
from events.dialects import margindash
from events.models import Budget, Customer
from events.services import blocklist_recompute, budget_create, ingest_events
from margins import calculations
from margins.models import CustomerHealth, MarginSettings
from margins.services import health_recompute

DEMO_ORGANIZATION = "Demo AI Co"
DEMO_USERNAME = "admin"
DEMO_PASSWORD = "tokenledger-demo"
DEMO_CUSTOMERS = [
    ("acme-corp", "Acme Corp", "billing@acme.example"),
    ("globex", "Globex Inc", "ap@globex.example"),
    ("initech", "Initech", "finance@initech.example"),
]
# (customer, event type, model, input tokens, output tokens, calls per day, revenue in cents per call)
DEMO_USAGE = [
    ("acme-corp", "summarize", "openai/gpt-4o", 2_400, 600, 6, 5),
    ("acme-corp", "chat", "openai/gpt-4o-mini", 900, 300, 12, 1),
    ("globex", "agent_run", "anthropic/claude-3.5-sonnet", 12_000, 2_500, 4, 20),
    ("initech", "chat", "openai/gpt-4o-mini", 700, 250, 5, 2),
]
DEMO_DAYS = 30
# (event type, product name, price in cents per request): what the demo organization charges
DEMO_PRICES = [
    ("summarize", "Summaries", Decimal("5")),
    ("chat", "Chat messages", Decimal("1")),
    ("agent_run", "Agent runs", Decimal("20")),
]


class Command(BaseCommand):
    help = "Create the demo organization, admin login, API key and customers, and print how to use them."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        with transaction.atomic():
            organization, _ = organization_get_or_create(name=DEMO_ORGANIZATION, plan=Organization.Plan.PRO)
            user = self._admin_user()
            membership_set(organization=organization, user=user, role=Role.OWNER)
            for api_key in ApiKey.objects.filter(organization=organization, name="demo", revoked_at__isnull=True):
                api_key_revoke(api_key=api_key)
            _, raw_key = api_key_create(organization=organization, name="demo", created_by=user)
            for external_id, name, email in DEMO_CUSTOMERS:
                Customer.objects.get_or_create(
                    organization=organization, external_id=external_id, defaults={"name": name, "email": email}
                )
            MarginSettings.objects.get_or_create(organization=organization)
            self._billing(organization)
            if not Budget.objects.filter(organization=organization).exists():
                budget_create(
                    organization=organization,
                    name="Globex daily spend",
                    scope=Budget.Scope.CUSTOMER,
                    scope_value="globex",
                    limit_microdollars=250_000,
                    period=Budget.Period.DAY,
                    action=Budget.Action.ALERT,
                )
        created = self._usage(organization)
        invoice_url = self._draft_invoice_link(organization, base_url)
        health_recompute(organization=organization)  # tiers for the dashboard and admin without a Stripe sync
        tiers = CustomerHealth.objects.filter(organization=organization).order_by("tag_value")
        self.stdout.write(f"Usage:     {created} new demo events over the last {DEMO_DAYS} days and today")
        self.stdout.write("Health:    " + ", ".join(f"{row.tag_value} {row.tier}" for row in tiers))
        # What a person needs, last and together, so it is on screen when the server starts.
        lines = [
            f"Demo organization: {organization.name} (plan {organization.plan})",
            f"Sign in:    {base_url}/login/   user {DEMO_USERNAME}   password {DEMO_PASSWORD}",
            f"Dashboard:  {base_url}/dashboard/   (margins, usage, mappings)",
            f"Admin:      {base_url}/admin/   (same login)",
            f"Invoice:    {invoice_url}   (Acme Corp's live draft, no login)",
            f"API docs:   {base_url}/api/docs/   and {base_url}/api/redoc/",
            f"API key:    {raw_key}",
            f"Try:        curl -H 'Authorization: Bearer {raw_key}' {base_url}/api/v1/organization",
        ]
        width = min(100, max(len(line) for line in lines))
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("=" * width))
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("=" * width))

    def _billing(self, organization) -> None:
        """A COUNT metric and a product per event type, one rate card, and a contract per customer.

        Created before the usage is sent, so ingest pre-aggregates it for these metrics."""
        if RateCard.objects.filter(organization=organization, name="Standard").exists():
            return
        # Rates and contracts start on whole UTC hours (usage is pre-aggregated per hour): the first of
        # last month, so the 30 days of demo usage are all billed and the drafts stay few.
        year, month = calculations.parse_period(calculations.shift_period(calculations.period_of(timezone.now()), -1))
        starts = datetime(year, month, 1, tzinfo=UTC)
        rate_card = billing_services.rate_card_create(organization=organization, name="Standard")
        for event_type, product_name, cents in DEMO_PRICES:
            metric = billing_services.billable_metric_create(
                organization=organization,
                name=f"{product_name} (requests)",
                aggregation_type=BillableMetric.AggregationType.COUNT,
                event_type_filter={"in_values": [event_type]},
            )
            product = billing_services.product_create(
                organization=organization, name=product_name, billable_metric=metric
            )
            billing_services.rate_create(rate_card=rate_card, product=product, starting_at=starts, price=cents)
        demo_ids = [external_id for external_id, _, _ in DEMO_CUSTOMERS]
        for customer in Customer.objects.filter(organization=organization, external_id__in=demo_ids):
            if not Contract.objects.filter(customer=customer).exists():
                billing_services.contract_create(
                    organization=organization, customer=customer, rate_card=rate_card, starting_at=starts
                )

    def _draft_invoice_link(self, organization, base_url: str) -> str:
        customer = Customer.objects.get(organization=organization, external_id=DEMO_CUSTOMERS[0][0])
        customer_drafts_recompute(customer_id=customer.pk)
        drafts = Invoice.objects.filter(customer=customer, status=Invoice.Status.DRAFT)
        invoice = drafts.order_by("-period_start").first()
        token = billing_services.invoice_link_token(invoice=invoice, expires_at=timezone.now() + timedelta(days=30))
        return base_url + reverse("billing:invoice-page", args=[token])

    def _usage(self, organization) -> int:
        """Send the demo usage through the MarginDash parser and the ingest service, a day per batch."""
        if not ModelPrice.objects.exists():
            from costcalc.loaders import load_source
            from costcalc.services import sync_model_prices

            self.stdout.write("Loading the model price catalog (genai-prices)...")
            sync_model_prices(result=load_source("genai-prices"))
        now = timezone.now()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        created = 0
        for day in range(DEMO_DAYS, -1, -1):  # today included
            # Each UTC day's calls are spread over that day, today's over its part that has passed
            # (whatever the hour: a daily budget sees all of today's usage, none lands in the future).
            start = today - timedelta(days=day)
            span = min(timedelta(days=1), now - start)
            events = [
                {
                    "customer_id": customer,
                    "event_type": event_type,
                    "occurred_at": (start + span * (call + 0.5) / per_day).isoformat(),
                    "idempotency_key": f"demo-{customer}-{event_type}-{start:%Y%m%d}-{call}",
                    "revenue_amount_in_cents": cents,
                    "vendor_responses": [
                        {
                            "model": model,
                            "input_tokens": input_tokens + 97 * ((day * 7 + call) % 11),
                            "output_tokens": output_tokens + 31 * ((day * 3 + call) % 7),
                        }
                    ],
                }
                for customer, event_type, model, input_tokens, output_tokens, per_day, cents in DEMO_USAGE
                for call in range(per_day)
            ]
            drafts = margindash.parse_batch({"events": events}, now=now)
            result = ingest_events(organization=organization, source="margindash", items=drafts)
            errors = [outcome.error for outcome in result.outcomes if outcome.error is not None]
            if errors:
                raise CommandError(f"demo usage was rejected: {errors[0].field}: {errors[0].message}")
            created += result.created
        blocklist_recompute(organization=organization)  # budgets and alerts current even without a worker
        return created

    def _admin_user(self):
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "admin@example.com"})
        user.is_staff = True
        user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        return user
