"""The Stripe calls behind collection, made with the organization's own key (`payments.client_for`).

Plain dicts in and out, so services never hold StripeObjects. Every write carries an idempotency key
derived from our invoice id (and line id), so a repeated call inside Stripe's 24-hour window returns
the first answer instead of creating a second object; past that window the services find what
exists by the metadata we wrote (`tokenledger_invoice_id`, `tokenledger_line_id`).
"""

import stripe

PAGE_SIZE = 100


class CollectionTransientError(Exception):
    """Stripe could not answer now (network, rate limit, 5xx, lock timeout): retry with backoff."""


def is_transient(exc: stripe.StripeError) -> bool:
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(exc, stripe.IdempotencyError):
        return False
    status = getattr(exc, "http_status", None)
    if status is None and isinstance(exc, stripe.APIError):
        return True
    if status == 409 and getattr(exc, "code", "") == "lock_timeout":
        return True
    return status is not None and status >= 500


def _list(resource_list, params: dict) -> list[dict]:
    items: list[dict] = []
    params = {**params, "limit": PAGE_SIZE}
    while True:
        page = resource_list(params=params)
        data = [item.to_dict() for item in page.data]
        items.extend(data)
        if not page.has_more or not data:
            return items
        params["starting_after"] = data[-1]["id"]


def find_invoice(*, client: stripe.StripeClient, stripe_customer_id: str, invoice_id: str) -> dict | None:
    """The Stripe invoice of the customer whose metadata names our invoice, if one exists."""
    for invoice in _list(client.v1.invoices.list, {"customer": stripe_customer_id}):
        if (invoice.get("metadata") or {}).get("tokenledger_invoice_id") == invoice_id:
            return invoice
    return None


def create_invoice(*, client: stripe.StripeClient, params: dict, idempotency_key: str) -> dict:
    return client.v1.invoices.create(params=params, options={"idempotency_key": idempotency_key}).to_dict()


def invoice_lines(*, client: stripe.StripeClient, stripe_invoice_id: str) -> list[dict]:
    return _list(lambda params: client.v1.invoices.line_items.list(stripe_invoice_id, params=params), {})


def create_item(*, client: stripe.StripeClient, params: dict, idempotency_key: str) -> dict:
    return client.v1.invoice_items.create(params=params, options={"idempotency_key": idempotency_key}).to_dict()


def retrieve_invoice(*, client: stripe.StripeClient, stripe_invoice_id: str) -> dict:
    return client.v1.invoices.retrieve(stripe_invoice_id).to_dict()


def finalize_invoice(
    *, client: stripe.StripeClient, stripe_invoice_id: str, auto_advance: bool, idempotency_key: str
) -> dict:
    return client.v1.invoices.finalize_invoice(
        stripe_invoice_id, params={"auto_advance": auto_advance}, options={"idempotency_key": idempotency_key}
    ).to_dict()
