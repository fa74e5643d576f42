"""Where the shared data lives, for tests that must not need Django's database.

Same rule as `settings.SHARED_DIR`: $TOKENLEDGER_SHARED_DIR, else `<repo>/../shared`, else /work/shared.
"""

import os
import re
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_000 = "seeds/000_75c4d3b1b8d6d483.txt"
PRICING_HISTORY = "pricing/openrouter/pricing_history.json"
_SLUG_LINE = re.compile(r"[a-z0-9][a-z0-9._-]*/[A-Za-z0-9._:-]+")


def shared_dir() -> Path:
    for candidate in (os.environ.get("TOKENLEDGER_SHARED_DIR"), REPO_ROOT.parent / "shared", "/work/shared"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    pytest.fail("shared data folder not found; set TOKENLEDGER_SHARED_DIR")


def shared_file(relative: str) -> Path:
    path = shared_dir() / relative
    if not path.exists():
        pytest.fail(f"{path} is missing from the shared data folder")
    return path


@cache
def seed_slugs() -> tuple[str, ...]:
    """The distinct model slugs of seed 000 (the list appears once per SDK tab)."""
    lines = shared_file(SEED_000).read_text().splitlines()
    return tuple(sorted({line.strip() for line in lines if _SLUG_LINE.fullmatch(line.strip())}))
