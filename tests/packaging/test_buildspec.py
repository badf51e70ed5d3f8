"""buildspec.yml: valid CodeBuild 0.2, every command parses, and a dry run makes the right calls.

No CodeBuild validator exists offline, so the schema below is written from AWS's "Build
specification reference" (version 0.2). The dry run executes the phases the way CodeBuild does
(one bash shell, commands in order, variables persisting) with ``aws``, ``docker`` and
``python`` replaced by recorders on PATH, then checks the calls and the artifact files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PHASES = ("install", "pre_build", "build", "post_build")

_COMMANDS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_PHASE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "run-as": {"type": "string"},
        "on-failure": {"enum": ["ABORT", "CONTINUE", "RETRY"]},
        "runtime-versions": {"type": "object",
                             "additionalProperties": {"type": ["string", "number"]}},
        "commands": _COMMANDS,
        "finally": _COMMANDS,
    },
    "required": ["commands"],
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": ["string", "number"]}}
BUILDSPEC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "phases"],
    "properties": {
        "version": {"const": 0.2},
        "run-as": {"type": "string"},
        "env": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "shell": {"enum": ["bash", "/bin/sh", "powershell.exe", "cmd.exe"]},
                "variables": _STRING_MAP,
                "parameter-store": _STRING_MAP,
                "secrets-manager": _STRING_MAP,
                "exported-variables": {"type": "array", "items": {"type": "string"}},
                "git-credential-helper": {"enum": ["yes", "no"]},
            },
        },
        "proxy": {"type": "object"},
        "batch": {"type": "object"},
        "phases": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: _PHASE for name in PHASES},
            "minProperties": 1,
        },
        "reports": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["files"],
            "properties": {"files": _COMMANDS, "base-directory": {"type": "string"},
                           "discard-paths": {"enum": ["yes", "no", True, False]},
                           "file-format": {"type": "string"}}}},
        "artifacts": {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": _COMMANDS,
                "name": {"type": "string"},
                "discard-paths": {"enum": ["yes", "no", True, False]},
                "base-directory": {"type": "string"},
                "exclude-paths": _COMMANDS,
                "enable-symlinks": {"enum": ["yes", "no", True, False]},
                "s3-prefix": {"type": "string"},
                "secondary-artifacts": {"type": "object"},
            },
        },
        "cache": {"type": "object", "properties": {"paths": _COMMANDS, "key": {"type": "string"},
                                                   "fallback-keys": _COMMANDS,
                                                   "action": {"enum": ["restore", "save"]}}},
    },
}

RECORDER = f"""#!{sys.executable}
# Records argv (and stdin of `docker login`) as one JSON line; prints what the real tool would.
import json, os, sys
name = os.path.basename(sys.argv[0])
entry = {{"tool": name, "argv": sys.argv[1:]}}
if name == "docker" and sys.argv[1:2] == ["login"]:
    entry["stdin"] = sys.stdin.read()
if name == "aws" and sys.argv[1:3] == ["ecr", "get-login-password"]:
    print("ecr-password-from-aws")
with open(os.environ["RECORD_FILE"], "a") as out:
    out.write(json.dumps(entry) + "\\n")
"""


@pytest.fixture(scope="module")
def buildspec() -> dict:
    return yaml.safe_load((REPO / "buildspec.yml").read_text())


def test_buildspec_matches_the_codebuild_0_2_schema(buildspec):
    jsonschema.validate(buildspec, BUILDSPEC_SCHEMA)


def test_schema_rejects_an_unknown_phase_and_a_phase_without_commands():
    for broken in ({"version": 0.2, "phases": {"compile": {"commands": ["true"]}}},
                   {"version": 0.2, "phases": {"build": {"finally": ["true"]}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, BUILDSPEC_SCHEMA)


def test_every_phase_command_is_valid_bash(buildspec):
    for phase in PHASES:
        for command in buildspec["phases"][phase]["commands"]:
            result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
            assert result.returncode == 0, f"{phase}: {command!r}: {result.stderr}"


def dry_run(buildspec: dict, workdir: Path, env: dict[str, str],
            phases=PHASES) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run ``phases`` in one bash shell as CodeBuild does, with recorders for the outside world."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("aws", "docker", "python"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    (workdir / "requirements").mkdir(exist_ok=True)
    (workdir / "requirements" / "torch-cpu.txt").write_text(
        (REPO / "requirements" / "torch-cpu.txt").read_text())
    lines = ["set -e"]
    lines += [command for phase in phases for command in buildspec["phases"][phase]["commands"]]
    record = workdir / "calls.jsonl"
    record.touch()
    run_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(workdir),
               "RECORD_FILE": str(record)}
    run_env.update({k: str(v) for k, v in buildspec["env"]["variables"].items()})
    run_env.update(env)
    result = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=workdir, env=run_env,
                            capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    return result, calls


@pytest.fixture
def codebuild_env() -> dict[str, str]:
    return {"AWS_DEFAULT_REGION": "eu-west-3", "AWS_ACCOUNT_ID": "123456789012",
            "ECR_REPOSITORY": "team/sluice", "CODEBUILD_RESOLVED_SOURCE_VERSION": uuid.uuid4().hex}


def argv_of(calls: list[dict], tool: str) -> list[list[str]]:
    return [call["argv"] for call in calls if call["tool"] == tool]


def test_dry_run_logs_in_builds_and_pushes_commit_tag_and_latest(buildspec, tmp_path,
                                                                  codebuild_env):
    result, calls = dry_run(buildspec, tmp_path, codebuild_env)
    assert result.returncode == 0, result.stderr
    registry = "123456789012.dkr.ecr.eu-west-3.amazonaws.com"
    image = f"{registry}/team/sluice:{codebuild_env['CODEBUILD_RESOLVED_SOURCE_VERSION'][:12]}"
    assert ["ecr", "get-login-password", "--region", "eu-west-3"] in argv_of(calls, "aws")
    login = next(call for call in calls if call["argv"][:1] == ["login"])
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", registry]
    assert login["stdin"].strip() == "ecr-password-from-aws"
    docker = argv_of(calls, "docker")
    assert ["build", "-t", image, "."] in docker
    assert ["tag", image, f"{registry}/team/sluice:latest"] in docker
    pushes = [argv[1] for argv in docker if argv[0] == "push"]
    assert pushes == [image, f"{registry}/team/sluice:latest"]
    order = [argv[0] for argv in docker]
    assert order.index("login") < order.index("build") < order.index("tag") < order.index("push")
    assert (tmp_path / "image-uri.txt").read_text().strip() == image
    assert json.loads((tmp_path / "imageDetail.json").read_text()) == {"ImageURI": image}
    assert not any(argv[:2] == ["-m", "deploy"] for argv in argv_of(calls, "python"))


def test_unit_tests_run_without_docker_tests_before_the_image_is_built(buildspec, tmp_path,
                                                                       codebuild_env):
    _, calls = dry_run(buildspec, tmp_path, codebuild_env)
    tools = [(call["tool"], call["argv"][:2]) for call in calls]
    pytest_call = next(call["argv"] for call in calls if call["argv"][:2] == ["-m", "pytest"])
    assert "not docker" in pytest_call
    assert tools.index(("python", ["-m", "pytest"])) < tools.index(("docker", ["build", "-t"]))
    installs = [argv for argv in argv_of(calls, "python") if argv[:3] == ["-m", "pip", "install"]]
    assert any("torch==2.13.0" in argv for argv in installs), installs


def test_explicit_tag_base_image_and_catalog_bucket_are_honoured(buildspec, tmp_path,
                                                                  codebuild_env):
    env = {**codebuild_env, "IMAGE_TAG": "v1.2.3", "BASE_IMAGE": "my/cuda:base",
           "CATALOG_BUCKET": "my-catalog"}
    result, calls = dry_run(buildspec, tmp_path, env)
    assert result.returncode == 0, result.stderr
    image = "123456789012.dkr.ecr.eu-west-3.amazonaws.com/team/sluice:v1.2.3"
    assert ["build", "--build-arg", "BASE_IMAGE=my/cuda:base", "-t", image, "."] in \
        argv_of(calls, "docker")
    assert ["-m", "deploy", "publish", "--bucket", "my-catalog", "--image-uri", image] in \
        argv_of(calls, "python")


def test_post_build_pushes_nothing_after_a_failed_build(buildspec, tmp_path, codebuild_env):
    env = {**codebuild_env, "CODEBUILD_BUILD_SUCCEEDING": "0"}
    result, calls = dry_run(buildspec, tmp_path, env, phases=("pre_build", "post_build"))
    assert result.returncode != 0
    assert not [argv for argv in argv_of(calls, "docker") if argv[0] == "push"]
    assert not (tmp_path / "image-uri.txt").exists()
