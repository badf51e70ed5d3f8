"""The client as a user installs it (issue 24 items 3 and 5): a fresh virtualenv, `pip install` of
the `sluice-deploy` wheel built from this checkout, then scripts run OUTSIDE the checkout.

The wheel's dependencies come from the package index (pip's cache makes a repeat quick); the
local endpoint's container still comes from this checkout, named by ``SLUICE_CHECKOUT``, as the
docs tell an installed client to do. The README's headline runs here verbatim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local import free_port, ping_status
from local_processes import kill_all, processes_serving, start_until, wait_until_no_process_serves

REPO = Path(__file__).resolve().parents[2]
# boto3 and what it pulls in; anything else (torch, flask, the SDK) would make the client heavy.
LIGHT = {"sluice-deploy", "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3",
         "pip", "setuptools", "wheel"}
PLAIN_PATH = "/usr/bin:/bin"  # a shell with no virtualenv on PATH


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel built from a clean copy of what `pip install .` reads
    (a build inside the checkout could pack stale files left in its build/ folder)."""
    root = tmp_path_factory.mktemp("client")
    source = root / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "deploy", source / "deploy", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", root / "wheels", source])
    (wheel,) = (root / "wheels").glob("sluice_deploy-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel])
    return venv


def user_env(**values: str) -> dict[str, str]:
    """The user's shell: no AWS setup, nothing pointing into this checkout."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "SLUICE_")) and name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **values}


def readme_headline() -> str:
    """The first code block of README.md, as it is shown."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", readme, flags=re.DOTALL).group(1)


def test_the_client_installs_with_boto3_alone_and_its_cli_runs_outside_the_checkout(client_venv, tmp_path):
    listed = run([client_venv / "bin" / "python", "-m", "pip", "list", "--format=json"], env=user_env())
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert installed <= LIGHT, installed - LIGHT

    models = run([client_venv / "bin" / "sluice-deploy", "models", "--filter", "model_id contains sluice-demo"],
                 cwd=tmp_path, env=user_env())
    assert models.stdout.split() == ["huggingface-llm-sluice-demo-small", "huggingface-llm-sluice-demo-tiny"]
    where = run([client_venv / "bin" / "python", "-c", "import deploy; print(deploy.__file__)"],
                cwd=tmp_path, env=user_env())
    assert where.stdout.startswith(str(client_venv)), where.stdout


def test_an_installed_client_without_a_checkout_says_how_to_point_at_one(client_venv, tmp_path, tiny_model_dir):
    done = subprocess.run([client_venv / "bin" / "sluice-deploy", "local", "--model-dir", tiny_model_dir,
                           "--port", str(free_port())], cwd=tmp_path, env=user_env(), capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "SLUICE_CHECKOUT" in done.stderr and "--docker --image-uri" in done.stderr


def test_readme_headline_runs_verbatim_from_an_installed_client_outside_the_checkout(
        client_venv, tmp_path, trained_tiny_model_dir):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny").symlink_to(trained_tiny_model_dir)  # what `make model` builds
    script = tmp_path / "headline.py"
    script.write_text(readme_headline(), encoding="utf-8")
    done = subprocess.run([client_venv / "bin" / "python", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=user_env(SLUICE_CHECKOUT=str(REPO)))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert re.search(r"[^\W\d_]{2,}", done.stdout) and len(done.stdout.strip()) >= 8, done.stdout


def test_the_printed_invoke_line_of_an_installed_client_runs_in_a_plain_shell(client_venv, tmp_path, tiny_model_dir):
    """`make local` once printed `python -m deploy invoke ...`, which a plain interpreter cannot run."""
    container_port = free_port()
    command = [str(client_venv / "bin" / "sluice-deploy"), "local", "--model-dir", str(tiny_model_dir),
               "--port", str(free_port()), "--container-port", str(container_port)]
    proc, banner = start_until(command, "Press Ctrl-C to stop.", tmp_path, user_env(SLUICE_CHECKOUT=str(REPO)))
    try:
        invoke_line = banner[-2]
        assert invoke_line.startswith(f"  {client_venv / 'bin' / 'sluice-deploy'} invoke sluice-local --stream ")
        pasted = subprocess.run(["bash", "-c", "\n".join(banner[-4:-1])], cwd="/", capture_output=True, text=True,
                                timeout=120, env=user_env(PATH=PLAIN_PATH))
        assert pasted.returncode == 0 and pasted.stdout.strip(), pasted.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert ping_status(f"http://127.0.0.1:{container_port}") is None
        assert wait_until_no_process_serves(container_port, 10) == []
    finally:
        proc.kill()
        kill_all(processes_serving(container_port))
