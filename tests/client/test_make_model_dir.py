"""`make serve/local/notebook MODEL_DIR=...` (issue 24 items 6 and 7), through the real make.

A typo'd MODEL_DIR used to get a freshly trained demo model and be served as if it were the
user's model. make now builds a demo model only into a demo size's own path (``models/<size>``);
any other directory must already hold a model, else one line and exit 2, before anything installs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make(*args: str, dry_run: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *(["-n"] if dry_run else []), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("target", ["serve", "local", "notebook"])
def test_a_model_dir_without_a_model_is_one_line_and_nothing_is_built(target, tmp_path):
    typo = tmp_path / "modles" / "tiny"
    done = make(target, f"MODEL_DIR={typo}", "PORT=19299")
    assert (done.returncode, done.stdout) == (2, "")
    (line,) = done.stderr.splitlines()
    assert f"MODEL_DIR={typo} holds no model (no config.json)" in line
    assert "models/<size>" in line
    assert not typo.exists() and not typo.parent.exists()


def test_a_demo_size_path_builds_that_size_if_missing():
    for model_dir in ("models/small", "./models/small/", str(REPO / "models" / "small")):
        done = make("serve", f"MODEL_DIR={model_dir}", "PORT=19299", dry_run=True)
        assert done.returncode == 0, done.stderr
        assert f"--no-print-directory model SIZE=small MODEL_DIR={model_dir}" in done.stdout


def test_a_model_dir_holding_a_model_is_served_as_it_is(tiny_model_dir):
    done = make("serve", f"MODEL_DIR={tiny_model_dir}", "PORT=19299", dry_run=True)
    assert done.returncode == 0, done.stderr
    assert f"HF_MODEL_ID={tiny_model_dir} SAGEMAKER_BIND_TO_PORT=19299 " in done.stdout


def test_the_serve_announcement_does_not_contain_the_servers_ready_text():
    """Scripts wait for `sluice: ready` on the output; make's own line must not match first."""
    done = make("serve", "PORT=19299", dry_run=True)
    assert done.returncode == 0, done.stderr
    assert "make: serving models/tiny on port 19299" in done.stdout
    assert "sluice: ready" not in done.stdout
