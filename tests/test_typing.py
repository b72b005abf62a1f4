"""The type check is part of the suite (STYLE "typed and explicit"): ``python -m mypy``
with the configuration in pyproject.toml passes, so the README's test command is also
the CI step. Without mypy installed the test is skipped, loudly (``-ra`` lists it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_mypy_passes_on_the_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("MYPY NOT INSTALLED: the type check did not run (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
                           str(tmp_path / "mypy-cache")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
