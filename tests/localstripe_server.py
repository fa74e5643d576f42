"""Run localstripe (a stateful fake Stripe server from PyPI) on 127.0.0.1 in a background thread.

Used because the real Stripe API cannot be reached from these machines; the code under test talks
to it through the official `stripe` library exactly as it would to Stripe. Notes on its dialect:
it accepts only `sk_…` secret keys (restricted `rk_…` keys are refused with 401), list endpoints
ignore most filters (status, created), and invoices are produced by subscriptions.

What localstripe 1.15 lacks for invoicing, added here (`_extend_for_invoicing`, applied once before the
server starts, in this process), each the way Stripe documents it:
- `Idempotency-Key`: a POST repeated with the same key (and API key) answers the first response
  again instead of acting twice (localstripe ignores the header);
- `POST /v1/invoices` without a subscription, with `currency`, `collection_method`, `days_until_due`,
  `auto_advance` and `pending_invoice_items_behavior` (`exclude`, Stripe's default: an empty draft;
  `include`: the customer's pending items), where localstripe only makes subscription invoices;
- `POST /v1/invoiceitems` with `invoice` (the item goes on that draft's lines; localstripe only
  attaches pending items when an invoice is created), `quantity`, `unit_amount_decimal` and `period`;
- `POST /v1/invoices/{id}/finalize` (draft -> open, or paid at $0: `number`, `hosted_invoice_url`,
  `invoice_pdf`, `due_date` for send_invoice) and `POST /v1/invoices/{id}/mark_uncollectible`;
  `amount_remaining` on invoices; paying an uncollectible invoice (localstripe's pay accepts only
  draft or open ones) and voiding one no payment was attempted for (localstripe cancels a missing
  PaymentIntent and fails);
- `POST /_config/fail` `{path, times, status}`: the next `times` requests whose path starts with
  `path` answer `status` (a 500 or 429 from "Stripe", to exercise retries).
"""

import asyncio
import json
import socket
import threading
import time
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

_idempotent_responses: dict[tuple[str, str], tuple[int, bytes]] = {}
_failures: list[dict] = []
_extended = False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _extend_for_invoicing() -> None:
    global _extended
    if _extended:
        return
    _extended = True
    import localstripe.resources as resources
    import localstripe.server as server
    from aiohttp import web
    from localstripe.errors import UserError

    invoice_cls, item_cls, line_cls = resources.Invoice, resources.InvoiceItem, resources.InvoiceLineItem

    @web.middleware
    async def failures(request, handler):
        for failure in _failures:
            if failure["times"] > 0 and request.path.startswith(failure["path"]):
                failure["times"] -= 1
                body = {"error": {"type": "api_error", "message": "Injected failure (tests)"}}
                return web.json_response(body, status=failure["status"])
        return await handler(request)

    @web.middleware
    async def idempotency(request, handler):
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        cache_key = (request.headers.get("Authorization", ""), key)
        if cache_key in _idempotent_responses:
            status, body = _idempotent_responses[cache_key]
            return web.Response(status=status, body=body, content_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
        response = await handler(request)
        if response.status < 500:
            _idempotent_responses[cache_key] = (response.status, response.body)
        return response

    @web.middleware
    async def pay_uncollectible(request, handler):
        """Stripe lets an uncollectible invoice be paid after all; localstripe's pay refuses anything not open."""
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[:2] != ["v1", "invoices"] or parts[3] != "pay":
            return await handler(request)
        invoice = resources.store.get(f"invoice:{parts[2]}")
        if invoice is None or not getattr(invoice, "_uncollectible", False):
            return await handler(request)
        invoice._uncollectible = False
        try:
            return await handler(request)
        finally:
            invoice._uncollectible = invoice.status == "open"

    server.app.middlewares.append(failures)
    server.app.middlewares.append(idempotency)
    server.app.middlewares.append(pay_uncollectible)

    # Voiding an invoice that no payment was attempted for: localstripe cancels its (absent) PaymentIntent.
    payment_intent_cancel = resources.PaymentIntent._api_cancel.__func__

    def cancel(cls, id, **kwargs):
        return None if id is None else payment_intent_cancel(cls, id, **kwargs)

    resources.PaymentIntent._api_cancel = classmethod(cancel)

    async def config_fail(request):
        data = await request.json()
        times, status = int(data.get("times", 1)), int(data.get("status", 500))
        _failures.append({"path": data["path"], "times": times, "status": status})
        return web.Response()

    server.app.router.add_post("/_config/fail", config_fail)

    # --- invoices: explicit currency and collection settings, empty drafts ---------------------------
    original_create = invoice_cls._api_create.__func__
    original_init = invoice_cls.__init__

    def create(cls, customer=None, currency=None, collection_method=None, days_until_due=None, auto_advance=None,
               pending_invoice_items_behavior=None, description=None, metadata=None, **kwargs):
        days = resources.try_convert_to_int(days_until_due)
        if collection_method not in (None, "charge_automatically", "send_invoice"):
            raise UserError(400, "Bad collection_method")
        if collection_method == "send_invoice" and not days:
            raise UserError(400, "days_until_due is required with send_invoice")
        if kwargs.get("subscription"):
            invoice = original_create(cls, customer=customer, description=description, metadata=metadata, **kwargs)
        elif pending_invoice_items_behavior == "include":
            invoice = invoice_cls(customer=customer, description=description, metadata=metadata)
        else:  # Stripe's default since API 2022-08-01: an empty draft, pending items stay pending
            listed = item_cls._api_list_all
            item_cls._api_list_all = classmethod(lambda cls, *a, **k: resources.List())  # no pending items
            try:
                invoice = invoice_cls(customer=customer, description=description, metadata=metadata)
            finally:
                item_cls._api_list_all = listed
        if currency:
            invoice.currency = currency.lower()
        invoice.collection_method = collection_method or "charge_automatically"
        invoice.days_until_due = days
        invoice.auto_advance = resources.try_convert_to_bool(auto_advance) if auto_advance is not None else True
        return invoice

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.number = None
        self.hosted_invoice_url = None
        self.invoice_pdf = None
        self.due_date = None
        self.days_until_due = None
        self.auto_advance = False
        self._uncollectible = False

    invoice_cls._api_create = classmethod(create)
    invoice_cls.__init__ = init

    original_status = invoice_cls.status.fget

    def status(self):
        value = original_status(self)
        if value == "open" and getattr(self, "_uncollectible", False):
            return "uncollectible"
        return value

    invoice_cls.status = property(status)
    invoice_cls.amount_remaining = property(lambda self: 0 if self.status in ("paid", "void") else self.amount_due)

    def finalize(id, auto_advance=None, **kwargs):
        invoice = invoice_cls._api_retrieve(id)
        if invoice.status != "draft":
            raise UserError(400, f"This invoice is already {invoice.status}")
        invoice._finalize()
        invoice.number = f"LS-{invoice.id[-8:].upper()}"
        invoice.hosted_invoice_url = f"https://invoice.stripe.test/i/{invoice.id}"
        invoice.invoice_pdf = f"https://pay.stripe.test/invoice/{invoice.id}/pdf"
        if auto_advance is not None:
            invoice.auto_advance = resources.try_convert_to_bool(auto_advance)
        if invoice.collection_method == "send_invoice":
            invoice.due_date = invoice.status_transitions["finalized_at"] + invoice.days_until_due * 86400
        if invoice.status == "paid":  # $0: Stripe marks it paid at once
            invoice.status_transitions["paid_at"] = invoice.status_transitions["finalized_at"]
        resources.schedule_webhook(resources.Event("invoice.finalized", invoice))
        return invoice

    def mark_uncollectible(id, **kwargs):
        invoice = invoice_cls._api_retrieve(id)
        if invoice.status != "open":
            raise UserError(400, f"A {invoice.status} invoice cannot be marked uncollectible")
        invoice._uncollectible = True
        return invoice

    for path, func in (("finalize", finalize), ("mark_uncollectible", mark_uncollectible)):
        server.app.router.add_route("POST", f"/v1/invoices/{{id}}/{path}", server.api_extra(func, path))

    # --- invoice items: on a given draft, quantity x unit_amount_decimal, period ----------------------
    original_item_init = item_cls.__init__

    def item_init(self, invoice=None, quantity=None, unit_amount_decimal=None, period=None, amount=None, **kwargs):
        target = None
        if invoice is not None:
            target = invoice_cls._api_retrieve(invoice)
            if target.status != "draft":
                raise UserError(400, "Items can only be added to a draft invoice")
            if kwargs.get("currency") and kwargs["currency"].lower() != target.currency:
                raise UserError(400, "The item's currency is not the invoice's")
        count = resources.try_convert_to_int(quantity) if quantity is not None else 1
        if unit_amount_decimal is not None:
            if amount is not None:
                raise UserError(400, "amount and unit_amount_decimal are exclusive")
            amount = int((Decimal(str(unit_amount_decimal)) * count).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if isinstance(period, dict):
            kwargs["period_start"], kwargs["period_end"] = period.get("start"), period.get("end")
        original_item_init(self, invoice=invoice, amount=amount, **kwargs)
        self.quantity = count
        self.unit_amount_decimal = None if unit_amount_decimal is None else str(unit_amount_decimal)
        if target is not None:
            target.lines._list.append(line_cls(self))

    item_cls.__init__ = item_init


def start_localstripe() -> str:
    """Start the server and return its base URL once it answers."""
    import localstripe.server
    from aiohttp import web

    _extend_for_invoicing()
    port = _free_port()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        web.run_app(localstripe.server.app, host="127.0.0.1", port=port, handle_signals=False, print=None)

    threading.Thread(target=serve, name="localstripe", daemon=True).start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return base_url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("localstripe did not start")


def flush(base_url: str) -> None:
    """Forget every object localstripe holds (between tests), remembered idempotency keys and failures."""
    _idempotent_responses.clear()
    _failures.clear()
    request = urllib.request.Request(f"{base_url}/_config/data", method="DELETE")
    urllib.request.urlopen(request, timeout=5).close()


def fail_next(base_url: str, path: str, *, times: int = 1, status: int = 500) -> None:
    """Make localstripe answer `status` to the next `times` requests whose path starts with `path`."""
    body = json.dumps({"path": path, "times": times, "status": status}).encode()
    request = urllib.request.Request(f"{base_url}/_config/fail", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).close()
