import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["down"] == []


def test_healthz_names_the_dependency_that_is_down_not_why(client, settings, monkeypatch):
    import redis

    def refuse(*args, **kwargs):
        raise redis.ConnectionError("Error 2 connecting to unix socket: /run/secret/redis.sock")

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(redis.Redis, "ping", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["broker"]
    assert body["broker"] == {"ok": False, "mode": "redis"}
    assert "secret" not in response.content.decode()


def test_openapi_schema_and_docs_answer(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert "/api/v1/organization" in schema.json()["paths"]
    assert docs.status_code == 200


def test_admin_answers(client):
    assert client.get("/admin/login/").status_code == 200


def test_seed_demo_prints_a_working_key_and_is_repeatable():
    first, second = StringIO(), StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)

    key = next(line.split()[-1] for line in second.getvalue().splitlines() if line.startswith("API key:"))
    old_key = next(line.split()[-1] for line in first.getvalue().splitlines() if line.startswith("API key:"))
    client = APIClient()
    assert client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {key}").json()["data"]["plan"] == "pro"
    assert client.get("/api/v1/organization", HTTP_AUTHORIZATION=f"Bearer {old_key}").status_code == 401


def _import_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "ENVIRONMENT"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = _import_settings(DEBUG="false")

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_import_without_network_or_database():
    result = _import_settings(DEBUG="false", SECRET_KEY="x" * 50, DATABASE_URL="postgres://nobody@192.0.2.1:1/none")

    assert result.returncode == 0, result.stderr


def test_healthz_names_a_database_that_is_down(client, monkeypatch):
    from django.db import OperationalError

    from config import health

    class DownConnection:
        def cursor(self):
            raise OperationalError('connection to server on socket "/tmp/.s.PGSQL.5432" failed')

    monkeypatch.setattr(health, "connection", DownConnection())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["down"] == ["database"]
    assert response.json()["database"] == {"ok": False}
    assert "socket" not in response.content.decode()
