import pytest

from accounts.models import ApiKey
from accounts.services import api_key_create
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_admin_creates_key_and_sees_secret_once(member_client, organization):
    client = member_client(role="admin")

    created = client.post("/api/v1/api-keys", {"name": "ci"}, format="json")
    listed = client.get("/api/v1/api-keys")

    assert created.status_code == 201
    secret = created.json()["data"]["key"]
    assert secret.startswith("tl_live_")
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()["data"]] == ["ci"]
    assert "key" not in listed.json()["data"][0]
    assert secret not in listed.content.decode()


def test_member_cannot_manage_keys(member_client):
    response = member_client(role="member").post("/api/v1/api-keys", {"name": "x"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["details"]["required_role"] == "admin"


def test_revoke_through_api_then_key_stops_working(member_client, organization, anonymous_client):
    api_key, raw_key = api_key_create(organization=organization, name="old")
    client = member_client(role="owner")

    response = client.post(f"/api/v1/api-keys/{api_key.id}/revoke")

    assert response.status_code == 200
    assert response.json()["data"]["is_active"] is False
    assert anonymous_client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 401


def test_another_tenants_key_is_404_not_403(member_client):
    other_key, _ = api_key_create(organization=OrganizationFactory(name="Other"), name="theirs")
    client = member_client(role="owner")

    assert client.get(f"/api/v1/api-keys/{other_key.id}").status_code == 404
    response = client.post(f"/api/v1/api-keys/{other_key.id}/revoke")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert ApiKey.objects.get(pk=other_key.pk).revoked_at is None


def test_scoped_views_cannot_override_get_queryset():
    from accounts.api.views import OrganizationScopedAPIView

    with pytest.raises(TypeError, match="get_base_queryset"):

        class Leaky(OrganizationScopedAPIView):
            def get_queryset(self):
                return ApiKey.objects.all()


@pytest.mark.parametrize("limit", ["", "0", "-1", "1.5", "false", "٣"])
def test_a_bad_limit_is_a_400(api_client, limit):
    response = api_client.get("/api/v1/customers", {"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "limit"


def test_a_bad_cursor_is_a_400_not_a_404(api_client):
    response = api_client.get("/api/v1/customers", {"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "cursor"


def test_a_large_limit_is_capped(api_client, organization):
    assert api_client.get("/api/v1/customers", {"limit": "100000"}).status_code == 200


@pytest.mark.parametrize("name", [1.5e-194, 7, True, ["ci"]])
def test_a_key_name_that_is_not_a_string_is_a_400(member_client, name):
    response = member_client(role="admin").post("/api/v1/api-keys", {"name": name}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["name"] == ["Must be a string."]
