import uuid

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from events.services.rollups import usage_rollups_analyze, usage_rollups_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the usage rollups (cost, revenue, requests per customer, model and day) from the ledger, for "
        "one organization or all. Ingest of an organization waits for one slice at a time (at most 100,000 events: "
        "whole customers, or one bigger customer's range of days)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", help="organization id (uuid); default: every organization")

    def handle(self, *args, organization, **options):
        organizations = Organization.objects.order_by("created_at")
        if organization:
            try:
                organizations = organizations.filter(pk=uuid.UUID(organization))
            except ValueError as error:
                raise CommandError(f"not an organization id: {organization}") from error
            if not organizations.exists():
                raise CommandError(f"no organization {organization}")
        for row in organizations:
            customers = usage_rollups_rebuild(organization_id=row.pk, analyze=False)
            self.stdout.write(f"{row.name}: rebuilt the usage rollups of {customers} customers")
        usage_rollups_analyze()  # once, for the planner (see usage_rollups_analyze)
