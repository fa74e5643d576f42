from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import Organization

pytestmark = pytest.mark.django_db


def test_create_api_key_creates_org_and_prints_key_last():
    out = StringIO()

    call_command("create_api_key", "--org", "Zeta", "--tier", "pro", "--name", "cli", stdout=out)

    raw_key = out.getvalue().strip().splitlines()[-1]
    assert raw_key.startswith("tl_live_")
    assert Organization.objects.get(name="Zeta").plan == "pro"
    client = APIClient()
    response = client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Zeta"


def test_create_api_key_reuses_existing_org():
    call_command("create_api_key", "--org", "Zeta", stdout=StringIO())
    call_command("create_api_key", "--org", "Zeta", stdout=StringIO())

    assert Organization.objects.filter(name="Zeta").count() == 1
    assert Organization.objects.get(name="Zeta").api_keys.count() == 2
