"""API key scopes: what each scope lets a key do, how keys get them, and the 403 that names the missing one."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db

EVENT = {
    "events": [
        {
            "customer_id": "cus_1",
            "idempotency_key": "scope-1",
            "vendor_responses": [{"model": "openai/gpt-4o", "input_tokens": 10, "output_tokens": 5}],
        }
    ]
}


@pytest.fixture
def key_client(organization):
    def make(*scopes: str) -> APIClient:
        _, raw_key = api_key_create(organization=organization, name="-".join(scopes), scopes=scopes)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        return client

    return make


def _forbidden_scope(response) -> str:
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"]["required_scope"] in error["message"]
    return error["details"]["required_scope"]


def test_an_ingest_key_ingests_and_polls_the_blocklist_but_nothing_else(key_client, organization):
    client = key_client("ingest")

    assert client.post("/api/v1/events", EVENT, format="json").status_code == 200
    assert client.post("/api/v1/ingest", [], format="json").status_code == 400  # validated, not refused
    assert client.post("/api/v1/usage-events", {}, format="json").status_code == 400
    assert client.post("/v1/ingest", [], format="json").status_code != 403  # Metronome's own path
    assert client.get("/api/v1/budgets/blocklist").status_code == 200
    assert client.get("/api/v1/organization").json()["data"]["scopes"] == ["ingest"]

    assert _forbidden_scope(client.get("/api/v1/customers")) == "read"
    assert _forbidden_scope(client.get("/api/v1/events")) == "read"
    assert _forbidden_scope(client.post("/api/v1/customers", {"external_id": "x"}, format="json")) == "billing:write"
    assert _forbidden_scope(client.get("/api/v1/api-keys")) == "admin"
    assert _forbidden_scope(client.post("/api/v1/api-keys", {"name": "mine"}, format="json")) == "admin"
    key = ApiKey.objects.get(name="ingest")
    assert _forbidden_scope(client.post(f"/api/v1/api-keys/{key.pk}/revoke")) == "admin"
    stripe = client.put("/api/v1/billing/stripe-account", {"secret_key": "sk_test_x"}, format="json")
    assert _forbidden_scope(stripe) == "admin"
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_a_read_key_reads_but_does_not_write(key_client):
    client = key_client("read")

    assert client.get("/api/v1/customers").status_code == 200
    assert client.get("/api/v1/billable-metrics").status_code == 200
    assert client.get("/api/v1/budgets/blocklist").status_code == 200
    assert _forbidden_scope(client.post("/api/v1/events", EVENT, format="json")) == "ingest"
    assert _forbidden_scope(client.post("/api/v1/customers", {"external_id": "x"}, format="json")) == "billing:write"
    assert _forbidden_scope(client.get("/api/v1/billing/stripe-account")) == "admin"


def test_a_billing_write_key_writes_configuration_but_cannot_manage_keys(key_client):
    client = key_client("billing:write", "read")

    assert client.post("/api/v1/customers", {"name": "Nine", "external_id": "cus_9"}, format="json").status_code == 201
    assert _forbidden_scope(client.post("/api/v1/api-keys", {"name": "escalate"}, format="json")) == "admin"


def test_an_admin_key_does_everything(key_client):
    client = key_client("admin")

    assert client.post("/api/v1/events", EVENT, format="json").status_code == 200
    assert client.post("/api/v1/customers", {"name": "Nine", "external_id": "cus_9"}, format="json").status_code == 201
    assert client.post("/api/v1/api-keys", {"name": "child"}, format="json").status_code == 201


def test_options_needs_no_particular_scope(key_client):
    assert key_client("ingest").options("/api/v1/customers").status_code == 200


def test_keys_are_created_with_scopes_and_their_scopes_can_be_replaced(api_client):
    created = api_client.post("/api/v1/api-keys", {"name": "sdk", "scopes": ["read", "ingest"]}, format="json")
    assert created.status_code == 201
    body = created.json()["data"]
    assert body["scopes"] == ["ingest", "read"]

    default = api_client.post("/api/v1/api-keys", {"name": "full"}, format="json").json()["data"]
    assert default["scopes"] == ["admin"]

    changed = api_client.patch(f"/api/v1/api-keys/{body['id']}", {"scopes": ["ingest"]}, format="json")
    assert changed.status_code == 200
    assert changed.json()["data"]["scopes"] == ["ingest"]
    assert ApiKey.objects.get(pk=body["id"]).scopes == ["ingest"]
    shown = api_client.get(f"/api/v1/api-keys/{body['id']}").json()["data"]
    assert shown["scopes"] == ["ingest"]


@pytest.mark.parametrize("scopes", [[], ["superuser"], "admin", None])
def test_unknown_or_empty_scopes_are_a_400(api_client, scopes):
    response = api_client.post("/api/v1/api-keys", {"name": "bad", "scopes": scopes}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "scopes"
    assert not ApiKey.objects.filter(name="bad").exists()


def test_another_tenants_key_cannot_have_its_scopes_changed(api_client, free_organization):
    other, _ = api_key_create(organization=free_organization, scopes=["ingest"])

    response = api_client.patch(f"/api/v1/api-keys/{other.pk}", {"scopes": ["admin"]}, format="json")

    assert response.status_code == 404
    assert ApiKey.objects.get(pk=other.pk).scopes == ["ingest"]


def test_a_session_member_is_governed_by_role_not_scopes(member_client):
    client = member_client("admin")

    assert client.post("/api/v1/api-keys", {"name": "x", "scopes": ["ingest"]}, format="json").status_code == 201
    assert client.get("/api/v1/organization").json()["data"]["scopes"] is None


def test_create_api_key_command_takes_scopes(db, capsys):
    call_command("create_api_key", "--org", "Scoped", "--scope", "ingest", "--scope", "read")

    out = capsys.readouterr().out
    assert "ingest, read" in out
    assert ApiKey.objects.get(organization__name="Scoped").scopes == ["ingest", "read"]


@pytest.mark.django_db(transaction=True)
def test_keys_that_existed_before_scopes_become_admin_keys():
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0001_initial")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO accounts_organization (id, name, plan, created_at) "
                "VALUES ('00000000-0000-0000-0000-000000000001', 'Old', 'free', now())"
            )
            cursor.execute(
                "INSERT INTO accounts_apikey (id, organization_id, name, prefix, key_hash, created_at) "
                "VALUES ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', "
                "'old', 'tl_live_oldoldoldold', %s, now())",
                ["a" * 64],
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert ApiKey.objects.get(name="old").scopes == ["admin"]


def test_roles_rank_in_their_declared_order_and_an_unknown_one_is_an_error():
    from accounts.models import Role

    assert [Role.rank(role) for role in Role.values] == list(range(len(Role.values)))
    assert Role.rank(Role.OWNER) > Role.rank(Role.ADMIN) > Role.rank(Role.MEMBER)
    with pytest.raises(ValueError, match="not a role"):
        Role.rank("superuser")
