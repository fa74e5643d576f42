"""Reading from Stripe (network only, no database): key checks, paging, and error classification.

Every client is built by `accounts.stripe_client.stripe_client`, so tests reach localstripe.
"""

import re
from dataclasses import dataclass

import stripe
from django.conf import settings

from accounts.stripe_client import stripe_client

PAGE_SIZE = 100  # Stripe's maximum page size

_KEY_RE = re.compile(r"^(?P<prefix>(?:rk|sk)_(?:live|test)_)(?P<body>[A-Za-z0-9]{16,247})$")


class StripeKeyFormatError(ValueError):
    pass


class StripeSyncError(Exception):
    """Stripe refused or failed a request during a sync; `transient` says whether retrying can help."""

    transient = False


class StripeTransientError(StripeSyncError):
    """Rate limited, unreachable, or a 5xx from Stripe: retry later with backoff."""

    transient = True


class StripeKeyRejected(StripeSyncError):
    """The stored key no longer authenticates (revoked, or lacks a permission the sync needs)."""


def validate_key_format(key: str, *, production: bool | None = None) -> str:
    """Seed 002: restricted keys (`rk_`) only; `sk_test_` is allowed outside production.

    Returns the key; raises StripeKeyFormatError with a message naming what is wrong.
    """
    production = settings.IS_PRODUCTION if production is None else production
    if not isinstance(key, str) or not key:
        raise StripeKeyFormatError("A Stripe key is required.")
    match = _KEY_RE.match(key)
    if match is None:
        raise StripeKeyFormatError(
            "Not a Stripe key: expected rk_live_…, rk_test_… (or sk_test_… outside production) followed by "
            "letters and digits."
        )
    prefix = match["prefix"]
    if prefix.startswith("rk_"):
        return key
    if prefix == "sk_test_" and not production:
        return key
    if prefix == "sk_test_":
        raise StripeKeyFormatError("Test secret keys (sk_test_) are not accepted in production; use a restricted key.")
    raise StripeKeyFormatError("Secret keys (sk_live_) are not accepted; create a restricted key (rk_live_) instead.")


def mask_key(key: str) -> str:
    """'rk_live_abcd…' → 'rk_live_abcd...wxyz': the mode prefix, then the first and last four characters."""
    match = _KEY_RE.match(key)
    prefix, body = (match["prefix"], match["body"]) if match else ("", key)
    return f"{prefix}{body[:4]}...{body[-4:]}"


def check_key(key: str) -> None:
    """The seed's minimal call, `customers.list(limit=1)`; raises stripe.StripeError when it fails."""
    stripe_client(key).v1.customers.list(params={"limit": 1})


def classify(exc: stripe.StripeError) -> StripeSyncError:
    """Map a Stripe library error to ours: transient (retry with backoff) or not."""
    message = f"{type(exc).__name__}: {exc.user_message or str(exc) or 'no message'}"
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return StripeTransientError(message)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return StripeKeyRejected(message)
    if isinstance(exc, stripe.APIError) and (exc.http_status is None or exc.http_status >= 500):
        return StripeTransientError(message)
    return StripeSyncError(message)


@dataclass(frozen=True)
class StripeSnapshot:
    customers: list[dict]
    invoices: list[dict]
    missing_invoice_ids: list[str]  # re-checked invoices that Stripe no longer has (deleted drafts)


def _list_all(resource, params: dict, *, stop=None) -> list[dict]:
    """Page through a Stripe list with `starting_after` until `has_more` is false or `stop(item)` is true."""
    items: list[dict] = []
    params = {**params, "limit": PAGE_SIZE}
    while True:
        page = resource.list(params=params)
        data = [item.to_dict(for_json=True) for item in page.data]  # Decimal fields → str, JSONB-safe
        for item in data:
            if stop is not None and stop(item):
                return items
            items.append(item)
        if not page.has_more or not data:
            return items
        params["starting_after"] = data[-1]["id"]


def fetch_snapshot(*, key: str, invoices_created_since: int | None, recheck_invoice_ids: list[str]) -> StripeSnapshot:
    """All customers, the invoices created at or after ``invoices_created_since`` (all when None), and a fresh
    copy of each invoice in ``recheck_invoice_ids`` (ones we saw unpaid, which may have been paid since).

    Stripe lists invoices newest first, so paging stops at the first invoice older than the cursor: a
    sync reads only what is new. (The `created` filter is not sent: the early stop makes it redundant.)
    Raises StripeSyncError subclasses.
    """
    client = stripe_client(key)
    try:
        customers = _list_all(client.v1.customers, {})
        stop = None
        if invoices_created_since is not None:
            def stop(invoice: dict) -> bool:
                return int(invoice.get("created") or 0) < invoices_created_since
        invoices = _list_all(client.v1.invoices, {}, stop=stop)
        seen = {invoice["id"] for invoice in invoices}
        missing: list[str] = []
        for invoice_id in recheck_invoice_ids:
            if invoice_id in seen:
                continue
            try:
                invoices.append(client.v1.invoices.retrieve(invoice_id).to_dict(for_json=True))
            except stripe.InvalidRequestError as exc:
                if exc.http_status != 404:
                    raise
                missing.append(invoice_id)
    except stripe.StripeError as exc:
        raise classify(exc) from exc
    return StripeSnapshot(customers=customers, invoices=invoices, missing_invoice_ids=missing)
