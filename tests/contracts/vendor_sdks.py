"""Vendor client libraries that cannot share the test venv's site-packages.

MarginDash's SDK (`ai-cost-calc` on PyPI) imports as `ai_cost_calc`, the import name of our own SDK
(sdk/python, installed editable into the venv). Both cannot be importable from one interpreter, so
the vendor's pinned release is installed with `pip --target` into `.venv/vendor-sdks/<name>` (from
PyPI, on first use, once per pinned version) and driven in a subprocess that puts that directory
first on `sys.path`. The library itself is not patched: the driver only passes a base URL and a key.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR_ROOT = Path(sys.prefix) / "vendor-sdks"


def installed(name: str) -> Path:
    """The directory holding `<name>-sdk.txt`'s pinned packages, installed there if not yet."""
    requirements = HERE / f"{name}-sdk.txt"
    target = VENDOR_ROOT / name
    stamp = target / ".requirements-sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == wanted):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade",
             "--target", str(target), "-r", str(requirements)],
            check=True,
        )  # fmt: skip
        stamp.write_text(wanted)
    return target


def run_driver(name: str, scenario: str, arguments: dict, *, timeout: float = 120) -> dict:
    """Run `<name>_driver.py <scenario>` with the vendor's package first on the path; its JSON answer."""
    target = installed(name)
    environment = {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    completed = subprocess.run(
        [sys.executable, "-s", str(HERE / f"{name}_driver.py"), scenario],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(f"{name} driver failed ({completed.returncode}):\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
