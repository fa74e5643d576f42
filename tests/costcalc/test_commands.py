import http.server
import socket
import threading
from decimal import Decimal
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from costcalc.models import ModelPrice

from ._shared import PRICING_HISTORY, shared_file

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("sync_model_prices", *args, stdout=out)
    return out.getvalue()


def test_default_source_is_the_bundled_genai_prices_catalog_and_a_rerun_changes_nothing():
    first = run()
    count = ModelPrice.objects.filter(source="genai-prices").count()
    assert count > 1000
    assert "[##############################] 100%" in first
    assert " added, 0 changed, 0 unchanged, 0 skipped" in first
    second = run("--source", "genai-prices")
    assert "0 added, 0 changed, " in second and " unchanged, 0 skipped" in second
    assert ModelPrice.objects.filter(source="genai-prices").count() == count


def test_openrouter_snapshots_in_date_order_close_and_open_rows():
    run("--source", "openrouter", "--file", str(shared_file("pricing/openrouter/models-2026-04-08.json")))
    before = ModelPrice.objects.count()
    output = run("--source", "openrouter", "--file", str(shared_file("pricing/openrouter/models-2026-05-01.json")))
    assert " changed, " in output and not output.strip().endswith("0 changed")
    assert ModelPrice.objects.filter(effective_until__isnull=False).exists()
    assert ModelPrice.objects.count() > before
    assert "skipped" in output


def test_history_file_and_skipped_listing():
    output = run("--source", "openrouter-history", "--file", str(shared_file(PRICING_HISTORY)), "--show-skipped")
    assert "skipped openrouter/auto: variable price" in output
    assert "5 skipped" in output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "openrouter"], "needs --file PATH or --url URL"),
        (["--source", "openrouter", "--file", "/no/such/file.json"], "cannot read"),
        (["--source", "openrouter", "--url", "ftp://example.invalid/x.json"], "only http(s) URLs"),
    ],
)
def test_unusable_input_is_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args)


def test_a_document_of_the_wrong_kind_is_refused_and_nothing_is_written():
    with pytest.raises(CommandError, match="not a openrouter-history document"):
        run("--source", "openrouter-history", "--file", str(shared_file("pricing/openrouter/models-2026-04-08.json")))
    assert ModelPrice.objects.count() == 0


@pytest.fixture
def http_document():
    """Serve one body over HTTP on loopback (a real server: --url really fetches); yields a setter."""
    state = {"body": b"", "status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(body: bytes, status: int = 200) -> str:
        state.update(body=body, status=status)
        return f"http://127.0.0.1:{server.server_address[1]}/api/v1/models"

    yield serve
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "url, message",
    [
        (f"http://127.0.0.1:{_closed_port()}/models.json", "cannot fetch"),
        ("http://[::1/models.json", "not a valid URL"),
        ("http://127.0.0.1:99999/models.json", "cannot fetch"),
        ("https:///models.json", "cannot fetch"),
    ],
)
def test_an_unreachable_or_malformed_url_is_a_clear_error_and_writes_nothing(url, message):
    with pytest.raises(CommandError, match=message):
        run("--source", "openrouter", "--url", url)
    assert ModelPrice.objects.count() == 0


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"data": [{"id": "a/b",', 200, "is not valid JSON"),
        (b"<html>busy</html>", 200, "is not valid JSON"),
        (b'{"error": "overloaded"}', 503, "cannot fetch .*503"),
        (b'{"models": []}', 200, "not a openrouter document"),
    ],
)
def test_a_bad_document_at_a_url_is_a_clear_error_and_writes_nothing(http_document, body, status, message):
    with pytest.raises(CommandError, match=message):
        run("--source", "openrouter", "--url", http_document(body, status))
    assert ModelPrice.objects.count() == 0


def _openrouter_model(slug: str, prompt: str, completion: str = "0.000002") -> dict:
    return {"id": slug, "name": slug, "pricing": {"prompt": prompt, "completion": completion}}


def test_prices_the_catalog_cannot_store_exactly_are_skipped_with_a_reason_and_the_rest_load(http_document):
    document = {
        "data": [
            _openrouter_model("acme/good", "0.000001"),
            _openrouter_model("acme/absurd", "1e40"),  # 1e46 USD per million tokens: beyond numeric(32, 20)
            _openrouter_model("acme/" + "x" * 300, "0.000001"),
            _openrouter_model("acme/nul\u0000", "0.000001"),
            _openrouter_model("acme/too-precise", "0.000000000000000000000000001"),  # 27 places per Mtok
        ]
    }
    url = http_document(orjson.dumps(document))

    output = run("--source", "openrouter", "--url", url, "--show-skipped")

    assert list(ModelPrice.objects.values_list("slug", "input_per_mtok")) == [("acme/good", Decimal(1))]
    assert "1 added, 0 changed, 0 unchanged, 4 skipped" in output
    assert "skipped acme/absurd: input price" in output and "beyond what the catalog stores" in output
    assert "slug must be 1 to 255 characters" in output
    assert "skipped acme/nul\\x00: contains a NUL character" in output
    assert "more than 20 decimal places" in output

    again = run("--source", "openrouter", "--url", url)
    assert "0 added, 0 changed, 1 unchanged, 4 skipped" in again
    assert ModelPrice.objects.count() == 1
