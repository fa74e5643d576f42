from io import StringIO

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
