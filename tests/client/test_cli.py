"""``python -m deploy``: commands, output and exit codes (moto in-process; real processes locally)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from aws_fixtures import REGION, ROLE
from deploy.__main__ import main
from deploy.catalog import load_catalog
from deploy.local import free_port
from local_processes import ctrl_c, sigint_as_in_a_terminal

REPO = Path(__file__).resolve().parents[2]
IMAGE = "111122223333.dkr.ecr.{region}.amazonaws.com/sluice:0.1.0"
DEMO = "huggingface-llm-sluice-demo-tiny"


def run_module(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_models_lists_the_catalog_and_applies_filters(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split() == load_catalog().model_ids()

    assert main(["models", "--filter", "task == llm",
                 "--filter", "instance_type in [ml.p5.48xlarge]"]) == 0
    assert capsys.readouterr().out.split() == ["huggingface-llm-falcon-180b-bf16",
                                               "huggingface-llm-falcon-180b-chat-bf16"]


def test_models_versions_prints_id_and_version(capsys):
    assert main(["models", "--versions", "--filter", "model_id == huggingface-llm-mistral-7b-instruct"]) == 0
    assert capsys.readouterr().out.splitlines() == ["huggingface-llm-mistral-7b-instruct 1.0.0",
                                                    "huggingface-llm-mistral-7b-instruct 2.0.0"]


def test_bad_filter_exits_1_with_one_error_line(capsys):
    assert main(["models", "--filter", "task llm"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot parse filter 'task llm'") and err.count("\n") == 1


def test_module_entrypoint_runs_and_rejects_missing_command():
    listed = run_module("models", "--filter", "model_id contains rinna")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["huggingface-llm-bilingual-rinna-4b-instruction-ppo-bf16",
                                     "huggingface-llm-rinna-3-6b-instruction-ppo-bf16"]
    assert run_module().returncode == 2


def test_deploy_then_delete_through_the_cli(aws, capsys):
    code = main(["deploy", DEMO, "--version", "1.0.0", "--role", ROLE, "--image-uri", "img:1",
                 "--model-data", "s3://b/p/", "--endpoint-name", "cli-ep",
                 "--env", "MAX_TOTAL_TOKENS=512", "--poll-interval", "0.01"])
    assert code == 0
    assert "endpoint cli-ep (InService)" in capsys.readouterr().out
    sm = boto3.client("sagemaker")
    model_name = sm.describe_endpoint_config(
        EndpointConfigName="cli-ep")["ProductionVariants"][0]["ModelName"]
    env = sm.describe_model(ModelName=model_name)["PrimaryContainer"]["Environment"]
    assert env["MAX_TOTAL_TOKENS"] == "512"

    assert main(["delete", "cli-ep"]) == 0
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []


@pytest.fixture
def endpoints_stay_creating(monkeypatch):
    """A real endpoint takes minutes in Creating; moto's is InService at once. Returns the
    callbacks run once an endpoint exists."""
    from moto.sagemaker.models import SageMakerModelBackend

    create, created = SageMakerModelBackend.create_endpoint, []

    def create_endpoint(self, *args, **kwargs):
        endpoint = create(self, *args, **kwargs)
        endpoint.endpoint_status = "Creating"
        for callback in created:
            callback()
        return endpoint

    monkeypatch.setattr(SageMakerModelBackend, "create_endpoint", create_endpoint)
    return created


def test_ctrl_c_while_deploy_waits_names_the_endpoint_it_leaves_creating(aws, endpoints_stay_creating, capsys):
    """Ctrl-C stops the wait, not the endpoint: the one line says which endpoint keeps creating
    (its name is generated unless given) and how to delete it, or it is billed unnoticed."""
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    endpoints_stay_creating.append(timer.start)
    # Ctrl-C as a terminal's foreground job gets it: a run started in the background (a shell
    # without job control) inherits SIGINT ignored, and the wait would never end.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(["deploy", DEMO, "--version", "1.0.0", "--role", ROLE, "--image-uri", "img:1",
                     "--model-data", "s3://b/p/", "--poll-interval", "0.05"])
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    [endpoint] = boto3.client("sagemaker").list_endpoints()["Endpoints"]
    name = endpoint["EndpointName"]
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"interrupted: endpoint {name} keeps creating in the background; "
                       f"`sluice-deploy delete {name}` deletes it")


def test_poll_interval_must_be_positive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["deploy", DEMO, "--poll-interval", "-1"])
    assert info.value.code == 2 and "--poll-interval" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`sluice-deploy models | head -1`: the pipe's reader has gone, which is no error of ours:
    no traceback, the exit status a shell gives a command killed by SIGPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        listed = subprocess.run([sys.executable, "-m", "deploy", "models"], cwd=REPO, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (listed.returncode, listed.stderr) == (141, "")


def test_deploy_unknown_model_suggests_close_ids(aws, capsys):
    assert main(["deploy", "huggingface-llm-falcon-7b", "--role", ROLE]) == 1
    err = capsys.readouterr().err
    assert "Unknown model id 'huggingface-llm-falcon-7b'" in err
    assert "huggingface-llm-falcon-7b-bf16" in err


def test_deploy_rejects_malformed_env(aws, capsys):
    assert main(["deploy", DEMO, "--version", "1.0.0", "--env", "NOVALUE"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_delete_unknown_endpoint_exits_1(aws, capsys):
    assert main(["delete", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_publish_to_a_folder_writes_manifests_and_specs(tmp_path, capsys):
    out = tmp_path / "content"
    assert main(["publish", "--out", str(out), "--image-uri", IMAGE]) == 0
    manifest = json.loads((out / "models_manifest.json").read_text())
    catalog = load_catalog()
    assert sorted((m["model_id"], m["version"]) for m in manifest) == \
        sorted((s.model_id, s.version) for s in catalog.specs)
    assert json.loads((out / "proprietary-sdk-manifest.json").read_text())

    spec = json.loads((out / "community_models/huggingface-llm-falcon-40b-instruct-bf16/"
                              "specs_v1.0.0.json").read_text())
    assert spec["default_inference_instance_type"] == "ml.g5.12xlarge"
    assert spec["hosting_prepacked_artifact_key"].endswith("/")
    aliases = spec["hosting_instance_type_variants"]["regional_aliases"]
    assert set(aliases) == set(catalog.regions)
    assert aliases["eu-west-1"]["sluice_image_uri"] == IMAGE.format(region="eu-west-1")
    variants = spec["hosting_instance_type_variants"]["variants"]
    assert variants["ml.g5.48xlarge"]["properties"]["environment_variables"] == {"SM_NUM_GPUS": "8"}
    env = {item["name"]: item["default"] for item in spec["inference_environment_variables"]}
    assert env["HF_MODEL_ID"] == "tiiuae/falcon-40b-instruct"


def test_publish_requires_exactly_one_target(capsys):
    with pytest.raises(SystemExit) as info:
        main(["publish", "--image-uri", IMAGE])
    assert info.value.code == 2


def test_publish_and_upload_to_s3(aws, tmp_path, capsys):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="content")
    assert main(["publish", "--bucket", "content", "--image-uri", IMAGE,
                 "--model-id", DEMO, "--region", REGION]) == 0
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="content")["Contents"]}
    assert keys == {"models_manifest.json", "proprietary-sdk-manifest.json",
                    f"community_models/{DEMO}/specs_v1.0.0.json"}

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    capsys.readouterr()
    assert main(["upload", "--model-dir", str(tmp_path / "model"), "--bucket", "content",
                 "--model-id", DEMO, "--version", "1.0.0"]) == 0
    assert capsys.readouterr().out.strip() == \
        f"s3://content/{load_catalog().get(DEMO, '1.0.0').artifact_key}"


def test_upload_to_a_bucket_that_does_not_exist_is_one_error_line(aws, tiny_model_dir, capsys):
    assert main(["upload", "--model-dir", str(tiny_model_dir), "--bucket", "no-such-bucket",
                 "--prefix", "tiny/"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "NoSuchBucket" in err and err.count("\n") == 1, err


def test_publish_into_a_folder_it_cannot_create_is_one_error_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert main(["publish", "--out", str(tmp_path / "a-file" / "content"), "--image-uri", IMAGE]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "a-file" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("image_uri", ["{account}.dkr.ecr.{region}.amazonaws.com/sluice:latest",
                                       "111122223333.dkr.ecr.{Region}.amazonaws.com/sluice:1"])
def test_publish_names_the_one_placeholder_an_image_uri_may_hold(tmp_path, image_uri, capsys):
    """SLUICE_IMAGE_URI may hold {account} for a deploy, which asks STS; published metadata is
    read by any account, so publish fills in {region} only and says so."""
    assert main(["publish", "--out", str(tmp_path / "content"), "--image-uri", image_uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --image-uri may contain {region} only") and err.count("\n") == 1, err
    assert not (tmp_path / "content").exists()


def test_local_serves_an_endpoint_that_invoke_streams_from(tiny_model_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{port}"}
    env.pop("AWS_PROFILE", None)
    server = subprocess.Popen([sys.executable, "-m", "deploy", "local", "--model-dir",
                               str(tiny_model_dir), "--port", str(port), "--endpoint-name", "cli-local"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 300
        for line in server.stdout:  # blocks until the endpoint announces itself
            if "ready" in line or time.monotonic() > deadline:
                break
        assert server.poll() is None, "local endpoint exited early"

        streamed = run_module("invoke", "cli-local", "--stream", "Once upon a time",
                              "--max-new-tokens", "8", env=env)
        whole = run_module("invoke", "cli-local", "Once upon a time", "--max-new-tokens", "8",
                           env=env)
        assert streamed.returncode == 0 and whole.returncode == 0, streamed.stderr + whole.stderr
        assert streamed.stdout.strip() and streamed.stdout == whole.stdout  # greedy: same text

        missing = run_module("invoke", "no-such-endpoint", "hi", env=env)
        assert missing.returncode == 1 and missing.stderr.startswith("error:")
    finally:
        ctrl_c(server)
    assert server.returncode == 0
