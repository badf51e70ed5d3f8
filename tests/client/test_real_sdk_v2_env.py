"""The real SageMaker SDK v2's tests, run in their own environment (``.venv-sdk2``).

v2 and v3 cannot share an environment and ``.venv`` holds v3, so ``tests/test_real_sdk.py`` runs in
``.venv-sdk2`` (``make install-sdk2``: about a minute, 380 MB) as a child pytest; without that
environment this skips, saying how to get it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SDK2_PYTHON = REPO / ".venv-sdk2" / "bin" / "python"
REAL_SDK_TESTS = Path(__file__).resolve().parent / "test_real_sdk.py"


def test_the_real_sdk_v2_deploys_our_catalog_in_its_own_environment():
    if not SDK2_PYTHON.exists():
        pytest.skip("the SDK v2 tests need .venv-sdk2 (make install-sdk2)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    run = subprocess.run([str(SDK2_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REAL_SDK_TESTS)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
