"""The code style the project keeps (ruff's lint and format, configured in pyproject.toml), checked
with every test run so that `.ci/run`, which runs exactly the README's test command, runs it too."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

RUFF = Path(sys.executable).parent / "ruff"


@pytest.fixture(scope="module")
def ruff() -> str:
    found = str(RUFF) if RUFF.exists() else shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    return found


def test_ruff_finds_nothing_to_lint(ruff):
    done = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_ruff_format_would_change_nothing(ruff):
    done = subprocess.run([ruff, "format", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
