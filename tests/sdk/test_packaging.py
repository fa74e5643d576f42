"""The SDK is a standalone package: it imports from its source tree with the standard library alone and
never loads Django, even in an environment where Django is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SDK_SRC = Path(__file__).resolve().parents[2] / "sdk" / "python" / "src"

PROBE = f"""
import sys
sys.path.insert(0, {str(SDK_SRC)!r})
import ai_cost_calc
from ai_cost_calc import AiCostCalc, BudgetExceeded, BudgetUnavailable, extract_usage
assert ai_cost_calc.__file__.startswith({str(SDK_SRC)!r}), ai_cost_calc.__file__
md = AiCostCalc(api_key="tl_live_x", base_url="http://127.0.0.1:9", flush_at_exit=False)
md.add_usage(model="openai/gpt-4o", input_tokens=1, output_tokens=1)
assert md.shutdown(timeout=0) is not None
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("django", "rest_framework", "config"))
print("loaded:", loaded)
assert not loaded, loaded
"""


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["-I"], id="django-installed-but-not-imported"),
        pytest.param(["-I", "-S"], id="standard-library-only"),
    ],
)
def test_the_sdk_imports_and_runs_without_django(flags):
    result = subprocess.run(
        [sys.executable, *flags, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd="/"
    )

    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout


def test_django_is_importable_in_the_first_case():
    """Guards the first case above: it only proves something while Django is installed here."""
    result = subprocess.run([sys.executable, "-I", "-c", "import django"], capture_output=True, timeout=60, cwd="/")

    assert result.returncode == 0
