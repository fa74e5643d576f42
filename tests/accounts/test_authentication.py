import hashlib

import pytest
from django.db import connection

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def test_api_key_authenticates_and_scopes_to_its_organization(api_client, organization):
    response = api_client.get("/api/v1/organization")

    assert response.status_code == 200
    assert response.json()["data"]["name"] == organization.name
    assert response.json()["data"]["via"] == "api_key"


def test_plaintext_api_key_is_never_stored(organization):
    api_key, raw_key = api_key_create(organization=organization, name="ci")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        rows = cursor.fetchall()
    assert rows, "the key row exists"
    assert not any(raw_key in str(value) for row in rows for value in row)
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(api_key.prefix) and len(api_key.prefix) < len(raw_key) // 2


def test_revoked_key_gets_401(anonymous_client, organization):
    api_key, raw_key = api_key_create(organization=organization)
    api_key_revoke(api_key=api_key)

    response = anonymous_client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


@pytest.mark.parametrize(
    "header",
    ["Bearer tl_live_notarealkeyatall0000000000000", "Bearer tl_live_", "Bearer a b", "Bearer"],
)
def test_bad_credentials_get_401(anonymous_client, organization, header):
    response = anonymous_client.get("/api/v1/organization", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_missing_credentials_get_401_not_403(anonymous_client):
    response = anonymous_client.get("/api/v1/organization")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_last_used_at_is_recorded(api_client, organization):
    assert ApiKey.objects.get(organization=organization).last_used_at is None

    api_client.get("/api/v1/organization")

    assert ApiKey.objects.get(organization=organization).last_used_at is not None


def test_session_user_acts_for_their_membership(member_client, organization):
    client = member_client(role="viewer")

    response = client.get("/api/v1/organization")

    assert response.status_code == 200
    assert response.json()["data"] == {**response.json()["data"], "name": organization.name, "role": "viewer"}


def test_user_without_membership_is_forbidden(db):
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    client = APIClient()
    client.force_login(UserFactory())

    response = client.get("/api/v1/organization")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
