import pytest

from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_adding_a_key_in_admin_shows_the_secret_once(admin_client_logged_in, organization):
    response = admin_client_logged_in.post(
        "/admin/accounts/apikey/add/", {"organization": organization.pk, "name": "from admin"}, follow=True
    )

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    secret = next(word for m in messages for word in m.split() if word.startswith("tl_live_"))
    api_key = ApiKey.objects.get(name="from admin")
    assert secret.startswith(api_key.prefix)
    detail = admin_client_logged_in.get(f"/admin/accounts/apikey/{api_key.pk}/change/")
    assert secret not in detail.content.decode()


@pytest.mark.parametrize(
    "url", ["/admin/accounts/organization/", "/admin/accounts/membership/", "/admin/accounts/apikey/"]
)
def test_admin_pages_load(admin_client_logged_in, organization, url):
    assert admin_client_logged_in.get(url).status_code == 200
