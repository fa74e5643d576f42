"""Outgoing webhooks (`margin.threshold_crossed`), signed the Standard Webhooks way.

Each request carries three headers:

- `webhook-id`: the delivery id (the same on every retry: receivers deduplicate with it),
- `webhook-timestamp`: Unix seconds when this attempt was signed,
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
  endpoint secret (`whsec_<base64 key>`; the key is the base64-decoded part).

Receivers verify with `verify_webhook` (or any Standard Webhooks library): it recomputes the
signature over the raw body, compares in constant time, and rejects timestamps older than five
minutes (replays) or more than `FUTURE_TOLERANCE_SECONDS` ahead of the receiver's clock.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from django.conf import settings
from django.utils import timezone

from accounts.models import Organization
from accounts.tasking import enqueue_on_commit

from .models import WebhookDelivery, WebhookEndpoint

THRESHOLD_CROSSED = WebhookEndpoint.EVENT_THRESHOLD_CROSSED
TOLERANCE_SECONDS = 5 * 60
FUTURE_TOLERANCE_SECONDS = 30  # clock skew allowed between sender and receiver
REQUEST_TIMEOUT_SECONDS = 10
SECRET_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    pass


class WebhookDeliveryFailed(Exception):
    """The receiver did not answer 2xx (or could not be reached); the task retries with backoff."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
        "user-agent": "TokenLedger-Webhooks/1",
    }


def verify_webhook(
    *, body: bytes, headers: Mapping[str, str], secret: str, now: int | None = None,
    tolerance_seconds: int = TOLERANCE_SECONDS,
) -> dict:
    """Check a received webhook and return its parsed JSON body. Raises WebhookVerificationError.

    ``headers`` is looked up case-insensitively. Rejects: missing headers, a timestamp older than
    ``tolerance_seconds`` or more than FUTURE_TOLERANCE_SECONDS in the future, and any signature mismatch
    (several space-separated `v1,` signatures are accepted, as during secret rotation).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp_text = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as exc:
        raise WebhookVerificationError(f"missing header {exc.args[0]}") from exc
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    now = int(time.time()) if now is None else now
    if now - timestamp > tolerance_seconds:
        raise WebhookVerificationError("timestamp too old")
    if timestamp - now > FUTURE_TOLERANCE_SECONDS:
        raise WebhookVerificationError("timestamp in the future")
    expected = sign(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body).encode()
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split()):
        raise WebhookVerificationError("signature mismatch")
    return json.loads(body)


# --- Queueing and delivering ------------------------------------------------------------------


def webhook_event_queue(*, organization: Organization, event_type: str, data: dict) -> list[WebhookDelivery]:
    """One delivery row per active endpoint that wants ``event_type``; sending starts after commit."""
    deliveries = []
    for endpoint in WebhookEndpoint.objects.filter(organization=organization, is_active=True):
        if not endpoint.wants(event_type):
            continue
        delivery = WebhookDelivery(organization=organization, endpoint=endpoint, event_type=event_type, payload={})
        delivery.payload = {
            "id": str(delivery.id),
            "type": event_type,
            "createdAt": timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "orgId": str(organization.pk),
            "data": data,
        }
        delivery.save()
        deliveries.append(delivery)
        # robust: a receiver that is down must not fail the sync that noticed the crossing (eager mode runs it inline).
        enqueue_on_commit("margins.tasks.webhook_deliver", args=[str(delivery.id)], robust=True)
    return deliveries


# --- Where a webhook may go ----------------------------------------------------------------------


_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and routes to: IPv4-mapped (`::ffff:a.b.c.d`),
    IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`), 6to4 (`2002:AABB:CCDD::`) and Teredo."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _IPV4_COMPATIBLE or any(address in prefix for prefix in _NAT64_PREFIXES):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(_is_public(embedded) for embedded in _embedded_ipv4(address))
    return True


def resolve_target(url: str) -> tuple[str | None, str | None]:
    """`(address, None)`: the address to connect to for `url`, resolved once and checked; or
    `(None, why)` when the server must not POST there; `(None, None)` when any target is allowed
    (WEBHOOKS_ALLOW_PRIVATE_TARGETS: nothing to check, the name is resolved when connecting).
    An endpoint's URL is chosen by an organization's admin, so unless WEBHOOKS_ALLOW_PRIVATE_TARGETS
    is on, every address its host
    resolves to must be a public one: not loopback, private, link-local (cloud metadata), shared,
    reserved, multicast or unspecified, also when written as an IPv6 form that embeds an IPv4
    address. The caller connects to the returned address, never resolving the name again (a name
    that resolves differently the second time cannot steer the request elsewhere)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None, "must be an http(s) URL with a host"
    if settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        return None, None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError):
        return None, f"the host {parts.hostname!r} cannot be resolved"
    addresses = [ipaddress.ip_address(sockaddr[0].split("%", 1)[0]) for *_, sockaddr in infos]
    if not addresses:
        return None, f"the host {parts.hostname!r} cannot be resolved"
    for address in addresses:
        if not _is_public(address):
            return None, f"the host {parts.hostname!r} resolves to a non-public address ({address})"
    return str(addresses[0]), None


def target_refusal(url: str) -> str | None:
    """Why the server must not POST to `url`, or None (see `resolve_target`)."""
    return resolve_target(url)[1]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A receiver answers for itself: a redirect (possibly to an address the URL check never saw) is
    a failed attempt, as Standard Webhooks senders treat it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _pin(connection: http.client.HTTPConnection, address: str) -> http.client.HTTPConnection:
    """Make ``connection`` open its socket to ``address`` whatever its host name (TLS still checks
    the certificate against the host name, and the Host header keeps it)."""
    connect = connection._create_connection
    connection._create_connection = lambda host_port, *args, **kwargs: connect(
        (address, host_port[1]), *args, **kwargs
    )
    return connection


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def http_open(self, req):
        return self.do_open(lambda host, **kwargs: _pin(http.client.HTTPConnection(host, **kwargs), self.address), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, address: str):
        super().__init__()
        self.address = address

    def https_open(self, req):
        return self.do_open(
            lambda host, **kwargs: _pin(http.client.HTTPSConnection(host, **kwargs), self.address),
            req,
            context=self._context,
        )


def _opener_to(address: str | None) -> urllib.request.OpenerDirector:
    """No redirects, no proxy from the environment, every connection to the checked ``address``
    (None: any target is allowed, the host name is resolved when connecting)."""
    if address is None:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _NoRedirects, _PinnedHTTPHandler(address), _PinnedHTTPSHandler(address)
    )


def webhook_attempt(*, delivery_id) -> WebhookDelivery:
    """POST a delivery once and record the outcome. Raises WebhookDeliveryFailed when it did not succeed,
    so the task can retry; a delivery that already succeeded is not sent again."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        return delivery
    address, refusal = resolve_target(delivery.endpoint.url)
    if refusal is not None:  # checked again at each attempt: what a name resolves to can change
        _record_attempt(delivery, status=None, error=f"not sent: the endpoint URL {refusal}")
        raise WebhookDeliveryFailed(delivery.last_error)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = signed_headers(secret=delivery.endpoint.secret, webhook_id=str(delivery.id), body=body)
    request = urllib.request.Request(delivery.endpoint.url, data=body, headers=headers, method="POST")  # noqa: S310
    status, error = None, ""
    try:
        with _opener_to(address).open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    _record_attempt(delivery, status=status, error=error)
    if delivery.status != WebhookDelivery.Status.SUCCEEDED:
        raise WebhookDeliveryFailed(delivery.last_error)
    return delivery


def _record_attempt(delivery: WebhookDelivery, *, status: int | None, error: str) -> None:
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = status
    if status is not None and 200 <= status < 300:
        delivery.status = WebhookDelivery.Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.last_error = ""
    else:
        delivery.last_error = error or f"HTTP {status}"
    delivery.save(
        update_fields=["attempts", "last_attempt_at", "response_status", "status", "delivered_at", "last_error"]
    )


def webhook_give_up(*, delivery_id) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED
    )
