"""The dashboard's organization switcher: a person in several organizations picks one for their
session; the pages and the JSON endpoints they call then act for it."""

import pytest
from django.test import Client

from accounts.models import Membership, Role
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def person():
    first = MembershipFactory(organization=OrganizationFactory(name="Acme AI"), role=Role.OWNER)
    second = MembershipFactory(organization=OrganizationFactory(name="Birch Labs"), user=first.user, role=Role.VIEWER)
    client = Client()
    client.force_login(first.user)
    return client, first, second


def _switch(client, organization_id, next_url="/dashboard/usage"):
    return client.post("/dashboard/organization", {"organization": str(organization_id), "next": next_url})


def test_the_switcher_lists_every_organization_and_marks_the_current_one(person):
    client, first, second = person

    page = client.get("/dashboard/").content.decode()

    assert 'id="organization-switch"' in page
    assert f'<option value="{first.organization_id}" selected>Acme AI</option>' in page
    assert f'<option value="{second.organization_id}">Birch Labs</option>' in page


def test_switching_moves_pages_and_api_calls_to_the_chosen_organization(person):
    client, _, second = person

    response = _switch(client, second.organization_id)

    assert response.status_code == 302 and response["Location"] == "/dashboard/usage"
    page = client.get("/dashboard/usage").content.decode()
    assert f'<option value="{second.organization_id}" selected>Birch Labs</option>' in page
    assert "(viewer)" in page  # the role in that organization
    called = client.get("/api/v1/organization").json()["data"]
    assert called["id"] == str(second.organization_id) and called["role"] == Role.VIEWER


def test_the_header_still_wins_over_the_session_choice(person):
    client, first, second = person
    _switch(client, second.organization_id)

    called = client.get("/api/v1/organization", HTTP_X_ORGANIZATION_ID=str(first.organization_id)).json()["data"]

    assert called["id"] == str(first.organization_id)


@pytest.mark.parametrize("target", ["not-a-uuid", "00000000-0000-4000-8000-000000000000", "other"])
def test_an_organization_that_is_not_yours_is_refused_and_nothing_changes(person, target):
    client, first, _ = person
    if target == "other":
        target = OrganizationFactory(name="Someone else").pk

    response = _switch(client, target, next_url="/dashboard/")

    assert response.status_code == 302
    page = client.get("/dashboard/").content.decode()
    assert "You are not a member of that organization." in page
    assert f'<option value="{first.organization_id}" selected>Acme AI</option>' in page


def test_a_choice_whose_membership_ended_falls_back_to_the_oldest(person):
    client, first, second = person
    _switch(client, second.organization_id)
    Membership.objects.filter(pk=second.pk).delete()

    called = client.get("/api/v1/organization").json()["data"]

    assert called["id"] == str(first.organization_id)
    assert 'id="organization-switch"' not in client.get("/dashboard/").content.decode()  # one left: no switcher


@pytest.mark.parametrize("next_url", ["https://evil.example/phish", "//evil.example/", ""])
def test_only_a_local_next_is_followed(person, next_url):
    client, _, second = person

    response = _switch(client, second.organization_id, next_url=next_url)

    assert response["Location"] == "/dashboard/"


def test_the_switch_needs_a_signed_in_post(person):
    client, _, second = person
    assert client.get("/dashboard/organization").status_code == 405
    anonymous = Client().post("/dashboard/organization", {"organization": str(second.organization_id)})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
