import pytest

pytestmark = pytest.mark.django_db


def test_malformed_json_gets_the_400_envelope(member_client):
    client = member_client(role="admin")

    response = client.post("/api/v1/api-keys", data=b'{"name": "oops",', content_type="application/json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "Malformed JSON" in error["message"]
    assert error["details"] == {"field": "body"}


def test_validation_error_names_the_field(member_client):
    response = member_client(role="admin").post("/api/v1/api-keys", {"name": "x" * 300}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"]["field"] == "name"
    assert error["message"].startswith("name:")


def test_body_over_the_limit_is_413(member_client, settings):
    settings.API_MAX_BODY_BYTES = 1024
    client = member_client(role="admin")

    body = b'{"name": "' + b"x" * 2048 + b'"}'
    response = client.post("/api/v1/api-keys", data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_wrong_media_type_is_415(member_client):
    response = member_client(role="admin").post("/api/v1/api-keys", data="name=x", content_type="text/plain")

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.urls("tests.accounts.gated_urls")
def test_free_tier_gets_403_with_upgrade_pointer_on_pro_endpoint(free_organization, member_client):
    response = member_client(role="owner", org=free_organization).get("/api/test/pro-only")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert error["details"]["required_plan"] == "pro"
    assert error["details"]["upgrade_url"]


@pytest.mark.urls("tests.accounts.gated_urls")
def test_pro_tier_passes_the_gate(api_client, organization):
    response = api_client.get("/api/test/pro-only")

    assert response.status_code == 200
    assert response.json() == {"data": {"organization": organization.name}}


@pytest.mark.urls("tests.accounts.gated_urls")
def test_throttled_is_429_with_retry_after(api_client):
    response = api_client.get("/api/test/throttled")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response["Retry-After"] == "8"


def test_unknown_api_path_is_json_404(api_client):
    response = api_client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_envelope(api_client):
    response = api_client.delete("/api/v1/organization")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
