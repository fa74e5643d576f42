"""Key format rules and Stripe error classification (no network), plus pagination through localstripe."""

import pytest
import stripe

from margins import stripe_api
from tests.margins.conftest import STRIPE_TEST_KEY

RESTRICTED_LIVE = "rk_live_51H8xYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
RESTRICTED_TEST = "rk_test_51H8xYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.mark.parametrize("production", [True, False])
def test_restricted_keys_are_accepted_in_every_environment(production):
    # localstripe refuses rk_ keys, so the success path of the format rule is checked here; the Stripe
    # check itself is exercised with sk_test_ keys against localstripe in test_views_stripe.py.
    assert stripe_api.validate_key_format(RESTRICTED_LIVE, production=production) == RESTRICTED_LIVE
    assert stripe_api.validate_key_format(RESTRICTED_TEST, production=production) == RESTRICTED_TEST


def test_test_secret_keys_only_outside_production():
    assert stripe_api.validate_key_format(STRIPE_TEST_KEY, production=False) == STRIPE_TEST_KEY
    with pytest.raises(stripe_api.StripeKeyFormatError, match="production"):
        stripe_api.validate_key_format(STRIPE_TEST_KEY, production=True)


@pytest.mark.parametrize(
    "key",
    ["", "sk_live_51H8xYzAbCdEfGhIjKlMnOpQr", "pk_live_51H8xYzAbCdEfGhIjKlMnOpQr", "rk_prod_51H8xYzAbCdEfGhIjKlMnOpQr",
     "rk_live_short", "rk_live_51H8xYz AbCdEfGhIjKlMnOpQr", "rk_live_51H8xYz\nAbCdEfGhIjKlMnOpQr"],
)
def test_other_keys_are_refused(key):
    with pytest.raises(stripe_api.StripeKeyFormatError):
        stripe_api.validate_key_format(key, production=False)


def test_mask_shows_mode_prefix_and_four_characters_each_side():
    assert stripe_api.mask_key("rk_live_abcd1234567890123456wxyz") == "rk_live_abcd...wxyz"
    assert stripe_api.mask_key(RESTRICTED_TEST) == "rk_test_51H8...6789"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (stripe.RateLimitError("slow down", http_status=429), stripe_api.StripeTransientError),
        (stripe.APIConnectionError("unreachable"), stripe_api.StripeTransientError),
        (stripe.APIError("boom", http_status=503), stripe_api.StripeTransientError),
        (stripe.APIError("boom", http_status=None), stripe_api.StripeTransientError),
        (stripe.AuthenticationError("bad key", http_status=401), stripe_api.StripeKeyRejected),
        (stripe.PermissionError("no invoices:read", http_status=403), stripe_api.StripeKeyRejected),
        (stripe.InvalidRequestError("bad param", param="x", http_status=400), stripe_api.StripeSyncError),
    ],
)
def test_classify(error, kind):
    classified = stripe_api.classify(error)

    assert type(classified) is kind
    assert classified.transient == (kind is stripe_api.StripeTransientError)


def test_fetch_snapshot_pages_with_starting_after_and_stops_at_the_cursor(localstripe, stripe_account):
    customer = stripe_account.customer(name="Many")
    ids = stripe_account.paid_invoices(customer, count=103)

    everything = stripe_api.fetch_snapshot(key=STRIPE_TEST_KEY, invoices_created_since=None, recheck_invoice_ids=[])
    nothing_new = stripe_api.fetch_snapshot(
        key=STRIPE_TEST_KEY, invoices_created_since=2**40, recheck_invoice_ids=[ids[0], "in_doesnotexist"]
    )

    assert sorted(i["id"] for i in everything.invoices) == sorted(ids)
    assert [i["id"] for i in nothing_new.invoices] == [ids[0]]  # only the re-checked one
    assert nothing_new.missing_invoice_ids == ["in_doesnotexist"]
