"""Static files are served by the application itself (WhiteNoise), with DEBUG off too, and the API
docs load their Swagger UI / Redoc assets from here, not from a CDN."""

import re

import pytest
from django.test import Client, override_settings


@pytest.fixture
def client_without_debug():
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        yield Client()


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_admin_css_is_served_with_debug_off(client_without_debug):
    response = client_without_debug.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"body" in body_of(response)


def test_the_dashboard_script_is_served_with_debug_off(client_without_debug):
    response = client_without_debug.get("/static/margins/dashboard.js")
    assert response.status_code == 200
    assert b"sync-now" in body_of(response)


def test_an_unknown_static_file_is_404(client_without_debug):
    assert client_without_debug.get("/static/admin/css/nope.css").status_code == 404


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_use_local_assets_only(client_without_debug, path):
    response = client_without_debug.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert external == [], external
    assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', html)
    assert assets, html[:500]
    for asset in assets:
        assert client_without_debug.get(asset).status_code == 200, asset


def test_favicon_ico_is_served_at_the_root(client_without_debug):
    response = client_without_debug.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert body_of(response)[:4] == b"\x00\x00\x01\x00"  # an ICO header: one image follows


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/redoc/"])
def test_pages_and_admin_link_the_svg_icon(client_without_debug, path):
    html = client_without_debug.get(path).content.decode()
    (icon,) = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert icon == "/static/tokenledger/favicon.svg"
    response = client_without_debug.get(icon)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in body_of(response)
