"""Where a margin webhook may be sent: an organization's admin chooses the URL, so in production the
server refuses non-public addresses (SSRF) when the endpoint is registered and at every attempt,
and never follows a redirect."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from margins import webhooks
from margins.models import WebhookDelivery, WebhookEndpoint
from tests.margins.http_stub import start_stub

SECRET = webhooks.generate_secret()


@pytest.fixture
def public_targets_only(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:9/hooks", "127.0.0.1"),
        ("http://localhost/hooks", "resolves to a non-public address"),
        ("http://10.1.2.3/hooks", "10.1.2.3"),
        ("http://192.168.0.10/hooks", "192.168.0.10"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),  # cloud metadata
        ("http://100.64.0.1/hooks", "100.64.0.1"),  # shared address space
        ("http://[::1]/hooks", "::1"),
        ("http://[fd00::1]/hooks", "fd00::1"),
        ("http://0.0.0.0/hooks", "0.0.0.0"),
        ("http://no-such-host.invalid/hooks", "cannot be resolved"),
        # IPv6 forms that carry an IPv4 address: judged by the IPv4 address they reach
        ("http://[64:ff9b::7f00:1]/hooks", "64:ff9b::7f00:1"),  # NAT64 of 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/hooks", "64:ff9b::a9fe:a9fe"),  # NAT64 of 169.254.169.254
        ("http://[2002:7f00:1::1]/hooks", "2002:7f00:1::1"),  # 6to4 of 127.0.0.1
        ("http://[2002:a00:1::1]/hooks", "2002:a00:1::1"),  # 6to4 of 10.0.0.1
        ("http://[::127.0.0.1]/hooks", "::7f00:1"),  # IPv4-compatible
        ("http://[::ffff:127.0.0.1]/hooks", "::ffff:7f00:1"),  # IPv4-mapped
        ("http://[::ffff:10.0.0.1]/hooks", "::ffff:a00:1"),
    ],
)
def test_non_public_targets_are_refused(public_targets_only, url, refused):
    assert refused in webhooks.target_refusal(url)


def test_public_addresses_and_the_development_switch(public_targets_only, settings):
    assert webhooks.target_refusal("https://93.184.216.34/hooks") is None
    assert webhooks.target_refusal("http://[64:ff9b::5db8:d822]/hooks") is None  # NAT64 of 93.184.216.34
    assert webhooks.target_refusal("http://[2002:5db8:d822::1]/hooks") is None  # 6to4 of 93.184.216.34
    assert webhooks.target_refusal("ftp://93.184.216.34/x") == "must be an http(s) URL with a host"
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    assert webhooks.target_refusal("http://127.0.0.1:9/hooks") is None


def test_the_api_refuses_to_register_a_private_target(public_targets_only, member_client, organization):
    admin = member_client(role="admin")

    refused = admin.post("/api/webhook-endpoints", {"url": "http://169.254.169.254/latest"}, format="json")
    accepted = admin.post("/api/webhook-endpoints", {"url": "https://93.184.216.34/hooks"}, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["field"] == "url"
    assert "non-public address (169.254.169.254)" in refused.json()["error"]["message"]
    assert accepted.status_code == 201
    assert list(WebhookEndpoint.objects.values_list("url", flat=True)) == ["https://93.184.216.34/hooks"]


def test_a_stored_private_target_is_not_sent_to(public_targets_only, organization):
    stub, server = start_stub([200])
    try:
        endpoint = WebhookEndpoint.objects.create(organization=organization, url=stub.url + "/hooks", secret=SECRET)
        delivery = WebhookDelivery.objects.create(
            organization=organization, endpoint=endpoint, event_type=webhooks.THRESHOLD_CROSSED, payload={}
        )

        with pytest.raises(webhooks.WebhookDeliveryFailed, match="non-public address"):
            webhooks.webhook_attempt(delivery_id=delivery.id)
    finally:
        server.shutdown()

    assert stub.received == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("not sent: the endpoint URL")


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(organization):
    stub, server = start_stub([200])

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(303)
            self.send_header("Location", stub.url + "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{redirector.server_address[1]}/hooks"
        endpoint = WebhookEndpoint.objects.create(organization=organization, url=url, secret=SECRET)
        delivery = WebhookDelivery.objects.create(
            organization=organization, endpoint=endpoint, event_type=webhooks.THRESHOLD_CROSSED, payload={}
        )
        with pytest.raises(webhooks.WebhookDeliveryFailed, match="HTTP 303"):
            webhooks.webhook_attempt(delivery_id=delivery.id)
    finally:
        redirector.shutdown()
        server.shutdown()

    assert stub.received == []


def test_an_attempt_connects_to_the_address_that_was_checked(public_targets_only, organization, monkeypatch):
    """DNS rebinding: the name resolves to a public address for the check and to 127.0.0.1 after;
    the request still goes to the checked address, with the name in the Host header."""
    import socket

    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url="http://hooks.example.test:8080/in", secret=SECRET
    )
    delivery = WebhookDelivery.objects.create(
        organization=organization, endpoint=endpoint, event_type="margin.threshold_crossed", payload={}
    )
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    resolved, connected = [], []

    def getaddrinfo(host, port, *args, **kwargs):
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    def create_connection(address, *args, **kwargs):
        connected.append(address)
        raise ConnectionRefusedError("stop here")

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)

    with pytest.raises(webhooks.WebhookDeliveryFailed):
        webhooks.webhook_attempt(delivery_id=delivery.id)

    assert resolved == ["hooks.example.test"]  # resolved once, by the check
    assert connected == [("93.184.216.34", 8080)]


def test_a_pinned_delivery_reaches_the_receiver_with_the_host_name(public_targets_only, organization, monkeypatch):
    """The pinned connection is a working one: the receiver (here on loopback, allowed for this test
    only) gets the signed POST with the URL's host name in the Host header."""
    import socket

    stub, server = start_stub([200])
    port = int(stub.url.rsplit(":", 1)[1])
    monkeypatch.setattr(webhooks, "_is_public", lambda address: True)
    monkeypatch.setattr(
        webhooks.socket,
        "getaddrinfo",
        lambda host, port_, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))],
    )
    try:
        endpoint = WebhookEndpoint.objects.create(
            organization=organization, url=f"http://receiver.example.test:{port}/hooks", secret=SECRET
        )
        delivery = WebhookDelivery.objects.create(
            organization=organization, endpoint=endpoint, event_type=webhooks.THRESHOLD_CROSSED, payload={"a": 1}
        )
        webhooks.webhook_attempt(delivery_id=delivery.id)
    finally:
        server.shutdown()

    (received,) = stub.received
    assert {k.lower(): v for k, v in received.headers.items()}["host"] == f"receiver.example.test:{port}"
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
