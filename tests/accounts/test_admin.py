import pytest

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_adding_a_key_in_admin_shows_the_secret_once(admin_client_logged_in, organization):
    response = admin_client_logged_in.post(
        "/admin/accounts/apikey/add/",
        {"organization": organization.pk, "name": "from admin", "scopes": ["ingest", "read"]},
        follow=True,
    )

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    secret = next(word for m in messages for word in m.split() if word.startswith("tl_live_"))
    api_key = ApiKey.objects.get(name="from admin")
    assert secret.startswith(api_key.prefix)
    assert api_key.scopes == ["ingest", "read"]
    detail = admin_client_logged_in.get(f"/admin/accounts/apikey/{api_key.pk}/change/")
    assert secret not in detail.content.decode()


@pytest.mark.parametrize(
    "url", ["/admin/accounts/organization/", "/admin/accounts/membership/", "/admin/accounts/apikey/"]
)
def test_admin_pages_load(admin_client_logged_in, organization, url):
    assert admin_client_logged_in.get(url).status_code == 200


def test_admin_shows_and_changes_a_keys_scopes(admin_client_logged_in, organization, api_key):
    key = ApiKey.objects.get()
    page = admin_client_logged_in.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert 'value="billing:write"' in page
    assert 'value="admin"' in page and "checked" in page

    response = admin_client_logged_in.post(
        f"/admin/accounts/apikey/{key.pk}/change/",
        {"organization": organization.pk, "name": key.name, "scopes": ["billing:write", "ingest"], "revoked_at": ""},
    )

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.scopes == ["ingest", "billing:write"]
    listing = admin_client_logged_in.get("/admin/accounts/apikey/").content.decode()
    assert "billing:write" in listing


def test_admin_refuses_a_key_without_scopes(admin_client_logged_in, organization):
    response = admin_client_logged_in.post(
        "/admin/accounts/apikey/add/", {"organization": organization.pk, "name": "none"}
    )

    assert response.status_code == 200  # the form again, with the error
    assert not ApiKey.objects.filter(name="none").exists()
