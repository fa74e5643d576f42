from django.core.management.base import BaseCommand

from accounts.models import ApiKeyScope, Organization
from accounts.services import api_key_create, organization_get_or_create


class Command(BaseCommand):
    help = "Create an API key for an organization (created if missing). The key is the last line of output."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization name")
        parser.add_argument("--tier", choices=Organization.Plan.values, help="plan tier (set on the organization)")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument(
            "--scope",
            action="append",
            choices=ApiKeyScope.values,
            dest="scopes",
            help="a scope of the key, repeatable (default: admin)",
        )

    def handle(self, *args, org: str, tier: str | None, name: str, scopes: list[str] | None, **options):
        organization, created = organization_get_or_create(name=org, plan=tier)
        api_key, raw_key = api_key_create(organization=organization, name=name, scopes=scopes or [ApiKeyScope.ADMIN])
        verb = "Created" if created else "Using"
        self.stdout.write(f"{verb} organization {organization.name} ({organization.plan}, id {organization.id}).")
        self.stdout.write(f"API key with scopes {', '.join(api_key.scopes)} (shown once):")
        self.stdout.write(raw_key)
