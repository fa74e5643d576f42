import pytest
import stripe

from accounts.stripe_client import stripe_client


def test_stripe_client_talks_to_localstripe(localstripe):
    client = stripe_client("sk_test_fixture")

    created = client.v1.customers.create(params={"name": "Acme", "metadata": {"customer_id": "12345"}})
    listed = client.v1.customers.list(params={"limit": 1})

    assert created.metadata["customer_id"] == "12345"
    assert [c.id for c in listed.data] == [created.id]


def test_each_test_starts_with_an_empty_stripe(localstripe):
    assert stripe_client("sk_test_fixture").v1.customers.list(params={"limit": 10}).data == []


def test_restricted_keys_are_refused_by_localstripe(localstripe):
    with pytest.raises(stripe.AuthenticationError):
        stripe_client("rk_test_fixture").v1.customers.list(params={"limit": 1})
