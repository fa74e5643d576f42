"""Every URL pattern of the project, asked with OPTIONS (and unknown methods): metadata or 405, never a 500."""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


def _patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(pattern: str) -> str:
    """A path that matches ``pattern``: converters and groups filled with a UUID or a word."""
    path = pattern.lstrip("^").rstrip("$").replace("\\Z", "").replace("\\.", ".")
    path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: str(uuid.uuid4()) if m.group(1) == "uuid" else "x1", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "x1", path)
    path = re.sub(r"\(\?:[^)]*\)\??", "", path)
    path = path.replace("/?", "/")
    return "/" + path


# Every API route: ours under /api/ and the vendor dialects' own paths (/v1/…, /accounts/…, /client/v4/…).
API_PATHS = sorted(
    {_concrete(p) for p in _patterns() if p.lstrip("^").startswith(("api/", "v1/", "accounts/", "client/v4/"))}
)


def test_the_url_map_is_covered():
    assert "/api/v1/ingest" in API_PATHS
    assert "/api/stripe/connect" in API_PATHS
    assert len(API_PATHS) > 40


@pytest.mark.parametrize("path", API_PATHS)
def test_options_answers_metadata_or_405_on_every_endpoint(api_client, member_client, path):
    for client in (api_client, member_client("owner")):
        response = client.options(path)
        assert response.status_code < 500, (path, response.status_code, response.content[:300])
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/json"), path


def test_options_on_a_view_without_a_serializer_lists_its_methods(api_client):
    response = api_client.options("/api/v1/ingest")

    assert response.status_code == 200
    assert response.json()["allowed_methods"] == ["POST"]  # a dialect endpoint: no envelope
    assert "actions" not in response.json()


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_unknown_api_urls_answer_the_envelope_in_every_mode(anonymous_client, settings, debug):
    settings.DEBUG = debug

    response = anonymous_client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "/api/v1/no-such-thing" in response.json()["error"]["message"]


def test_a_405_from_a_function_view_is_the_envelope_with_allow(anonymous_client):
    response = anonymous_client.get("/api/stripe/webhooks/billing")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"


def test_pages_outside_the_api_keep_html_errors(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_chunked_body_without_length_is_refused_with_411(api_client):
    from events.models import UsageEvent

    response = api_client.generic(
        "POST",
        "/api/v1/events",
        b'{"events": []}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )

    assert response.status_code == 411
    assert response.json()["error"]["code"] == "length_required"
    assert not UsageEvent.objects.exists()
