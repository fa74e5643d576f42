"""Failed sign-ins are limited per client address (accounts.signin), in the same window as failed
API keys; signed-in people calling the API have per-caller budgets like keys do."""

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Membership, Role
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_counts_from_other_tests():
    from django.core.cache import cache

    cache.clear()  # the test cache lives as long as the process; counts are per address and window
    yield
    cache.clear()


@pytest.fixture
def limits(settings):
    settings.API_RATE_LIMITS = {
        "ingest": "3/minute", "read": "2/minute", "write": "1/minute", "auth_failures": "3/minute",
    }
    return settings.API_RATE_LIMITS


@pytest.fixture
def member(organization):
    user = get_user_model().objects.create_user(username="ada", password="right-password-1")
    Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
    return user


def _sign_in(password, address="203.0.113.20", path="/login/"):
    client = Client(REMOTE_ADDR=address)
    return client, client.post(path, {"username": "ada", "password": password})


def test_failed_sign_ins_are_limited_per_address_even_with_the_right_password(limits, member):
    with time_machine.travel("2026-03-31T23:59:30Z", tick=False) as clock:
        for _ in range(3):
            _, wrong = _sign_in("wrong")
            assert wrong.status_code == 200 and "didn't match" in wrong.text

        refused_client, refused = _sign_in("right-password-1")

        assert refused.status_code == 429
        assert "_auth_user_id" not in refused_client.session
        assert 1 <= int(refused["Retry-After"]) <= 60
        assert "Too many failed sign-ins" in refused.text
        # Another address is not limited.
        other, allowed = _sign_in("right-password-1", address="198.51.100.20")
        assert allowed.status_code == 302 and other.session.get("_auth_user_id") == str(member.pk)
        # The window moves on.
        clock.shift(61)
        again, allowed = _sign_in("right-password-1")
        assert allowed.status_code == 302 and again.session.get("_auth_user_id") == str(member.pk)


def test_the_admin_sign_in_counts_and_is_refused_too(limits, member):
    member.is_staff = member.is_superuser = True
    member.save()
    for _ in range(3):
        _, wrong = _sign_in("wrong", path="/admin/login/")
        assert wrong.status_code == 200
    client, refused = _sign_in("right-password-1", path="/admin/login/")

    assert refused.status_code == 200  # the admin's own form, with its error
    assert "_auth_user_id" not in client.session


def test_failed_sign_ins_and_failed_api_keys_share_the_address_window(limits, organization, member):
    from rest_framework.test import APIClient

    wrong_key = APIClient(REMOTE_ADDR="203.0.113.20")
    wrong_key.credentials(HTTP_AUTHORIZATION="Bearer tl_live_" + "x" * 40)
    for _ in range(2):
        assert wrong_key.get("/api/v1/customers").status_code == 401
    _sign_in("wrong")

    _, good_key = api_key_create(organization=organization)
    right = APIClient(REMOTE_ADDR="203.0.113.20")
    right.credentials(HTTP_AUTHORIZATION=f"Bearer {good_key}")
    assert right.get("/api/v1/customers").status_code == 429
    assert _sign_in("right-password-1")[1].status_code == 429


def test_a_signed_in_person_calling_the_api_has_budgets_of_their_own(limits, member, organization):
    client = Client()
    client.force_login(member)
    other = get_user_model().objects.create_user(username="grace", password="x-password-2")
    Membership.objects.create(user=other, organization=organization, role=Role.VIEWER)
    other_client = Client()
    other_client.force_login(other)

    assert [client.get("/api/v1/customers").status_code for _ in range(2)] == [200, 200]
    limited = client.get("/api/v1/customers")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert other_client.get("/api/v1/customers").status_code == 200  # another person, their own budget


def test_sign_ins_without_a_request_are_not_counted(limits, member):
    for _ in range(5):
        assert not Client().login(username="ada", password="wrong")
    assert Client().login(username="ada", password="right-password-1")
    _, allowed = _sign_in("right-password-1")
    assert allowed.status_code == 302
