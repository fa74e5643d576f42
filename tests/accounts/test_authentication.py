import hashlib

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services
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


def _ask(client, raw_key):
    return client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code


def test_a_verified_key_costs_only_the_version_check_within_the_cache_time(
    anonymous_client, organization, django_assert_num_queries, monkeypatch
):
    api_key_create(organization=organization)  # another key of the organization: lookups go by prefix
    _, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200
    reads = []
    version_read = services._version_read
    monkeypatch.setattr(services, "_version_read", lambda pk: reads.append(pk) or version_read(pk))

    # The version read is a prepared statement on the raw connection, outside Django's query log:
    # no ORM query at all (no key lookup), and one version read.
    with django_assert_num_queries(0):
        assert services.api_key_authenticate(raw_key) is not None
    assert reads == [organization.pk]


def test_with_a_shared_cache_a_verified_key_costs_no_query(
    anonymous_client, organization, settings, django_assert_num_queries
):
    settings.API_KEY_VERSION_IN_CACHE = True
    _, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200

    with django_assert_num_queries(0):
        assert services.api_key_authenticate(raw_key) is not None


def test_revoking_a_key_takes_effect_at_once_in_the_revoking_process(anonymous_client, organization):
    api_key, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200  # verified and cached

    api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))

    assert _ask(anonymous_client, raw_key) == 401


@pytest.mark.parametrize("version_in_cache", [False, True], ids=["database-version", "shared-cache-token"])
def test_a_key_revoked_by_another_process_stops_working_at_once(
    anonymous_client, organization, settings, monkeypatch, django_capture_on_commit_callbacks, version_in_cache
):
    settings.API_KEY_CACHE_SECONDS = 3600
    settings.API_KEY_VERSION_IN_CACHE = version_in_cache
    api_key, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200
    # Another process revokes it: this process's own cache is not emptied, only the shared version moves.
    monkeypatch.setattr(services._verified_keys, "clear", lambda: None)
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))
    assert services._verified_keys.get(hashlib.sha256(raw_key.encode()).hexdigest()) is not None

    assert _ask(anonymous_client, raw_key) == 401


def test_scopes_changed_by_another_process_apply_at_once(anonymous_client, organization, settings, monkeypatch):
    settings.API_KEY_CACHE_SECONDS = 3600
    api_key, raw_key = api_key_create(organization=organization)
    assert anonymous_client.get("/api/v1/customers", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 200
    monkeypatch.setattr(services._verified_keys, "clear", lambda: None)

    services.api_key_set_scopes(api_key=ApiKey.objects.get(pk=api_key.pk), scopes=["ingest"])

    response = anonymous_client.get("/api/v1/customers", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.status_code == 403
    assert response.json()["error"]["details"]["required_scope"] == "read"


def test_an_evicted_shared_token_means_looking_the_key_up_again(anonymous_client, organization, settings):
    from django.core.cache import cache

    settings.API_KEY_VERSION_IN_CACHE = True
    api_key, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())  # no signal, no version bump
    cache.delete(services._TOKEN_CACHE_KEY)

    assert _ask(anonymous_client, raw_key) == 401


def test_the_cache_can_be_turned_off(anonymous_client, organization, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    api_key, raw_key = api_key_create(organization=organization)
    assert _ask(anonymous_client, raw_key) == 200

    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())

    assert _ask(anonymous_client, raw_key) == 401


def test_a_plan_change_in_this_process_applies_to_cached_keys_at_once(anonymous_client, free_organization):
    _, raw_key = api_key_create(organization=free_organization)
    before = anonymous_client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert before.json()["data"]["plan"] == "free"

    services.organization_get_or_create(name=free_organization.name, plan="pro")

    response = anonymous_client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert response.json()["data"]["plan"] == "pro"
