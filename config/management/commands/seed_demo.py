"""Create (or refresh) the demo organization: a Pro org, an admin user, an API key and customers.

Idempotent: running it again reuses what exists and prints a fresh API key (the previous demo key
is revoked, since a key's secret cannot be shown twice).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import ApiKey, Organization, Role
from accounts.services import api_key_create, api_key_revoke, membership_set, organization_get_or_create
from events.models import Customer
from margins.models import MarginSettings

DEMO_ORGANIZATION = "Demo AI Co"
DEMO_USERNAME = "admin"
DEMO_PASSWORD = "tokenledger-demo"
DEMO_CUSTOMERS = [
    ("acme-corp", "Acme Corp", "billing@acme.example"),
    ("globex", "Globex Inc", "ap@globex.example"),
    ("initech", "Initech", "finance@initech.example"),
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
        self.stdout.write(self.style.SUCCESS(f"Demo organization: {organization.name} (plan {organization.plan})"))
        self.stdout.write(f"Admin:     {base_url}/admin/   login {DEMO_USERNAME} / {DEMO_PASSWORD}")
        self.stdout.write(f"API docs:  {base_url}/api/docs/")
        self.stdout.write(f"Health:    {base_url}/healthz")
        self.stdout.write(f"API key:   {raw_key}")
        self.stdout.write(f"Margins:   sign in at /admin/, then open {base_url}/api/margins (session auth, Pro plan)")
        self.stdout.write(f"Try:       curl -H 'Authorization: Bearer {raw_key}' {base_url}/api/v1/organization")

    def _admin_user(self):
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": "admin@example.com"})
        user.is_staff = True
        user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        return user
