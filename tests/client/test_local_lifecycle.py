"""A local endpoint never outlives its owner (issue 24 item 2), through the real CLI and processes.

`sluice-deploy deploy MODEL --instance-type local` used to print ``model None``, exit 0 and leave
its container answering on a random port with nobody to stop it. Now a CLI local deploy serves in
the foreground like ``local``, and a container whose owner dies (even by SIGKILL) is stopped by its
orphan guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from deploy.local import free_port, ping_status
from deploy.stream import TokenIterator
from local_processes import kill_all, processes_serving, start_until, wait_until_no_process_serves

REPO = Path(__file__).resolve().parents[2]
DEMO = "huggingface-llm-sluice-demo-tiny"
# The guard gives the container SageMaker's 30 s to stop gracefully before SIGKILL; plus slack.
ORPHAN_STOP_SECONDS = 45


def no_aws_env(**values: str) -> dict[str, str]:
    """A shell that never configured AWS, and no SLUICE_MODEL_DIR to fall back on."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("AWS_") and name != "SLUICE_MODEL_DIR"}
    return {**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **values}


def stream_text(runtime_url: str, endpoint: str) -> str:
    client = boto3.client("sagemaker-runtime", endpoint_url=runtime_url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local",
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=120))
    response = client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, ContentType="application/json",
        Body=b'{"inputs": "Once upon a time", "parameters": {"max_new_tokens": 4}, "stream": true}')
    return "".join(TokenIterator(response["Body"]))


def orphan_guards_of(pid: int) -> list[int]:
    """The orphan-guard processes watching the container whose leader is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if any(arg.endswith(b"orphan_guard.py") for arg in argv) and str(pid).encode() in argv:
            found.append(int(entry.name))
    return found


def test_cli_local_deploy_serves_in_the_foreground_until_sigterm_then_leaves_nothing(tiny_model_dir):
    port, container_port = free_port(), free_port()
    command = [sys.executable, "-m", "deploy", "deploy", DEMO, "--instance-type", "local",
               "--model-dir", str(tiny_model_dir), "--port", str(port), "--container-port", str(container_port)]
    proc, lines = start_until(command, "Press Ctrl-C to stop.", REPO, no_aws_env())
    serving = processes_serving(container_port)
    try:
        runtime = f"http://127.0.0.1:{port}"
        *before, ready = lines[:-5]  # the banner: the ready line and five lines of how to use it
        assert ready == f"Endpoint '{DEMO}' ready: runtime API {runtime} -> container http://127.0.0.1:{container_port}"
        assert all(line.startswith("warning: ") for line in before), before  # e.g. the '*' version resolved
        assert stream_text(runtime, DEMO).strip()
        assert proc.poll() is None, "the CLI returned while its endpoint should be serving"
        (leader,) = [pid for pid in serving if orphan_guards_of(pid)]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read().strip() == "Stopping."
        assert ping_status(f"http://127.0.0.1:{container_port}") is None
        assert wait_until_no_process_serves(container_port, 10) == []
        assert orphan_guards_of(leader) == [], "a clean stop releases the container's orphan guard"
    finally:
        proc.kill()
        kill_all(processes_serving(container_port))


@pytest.mark.parametrize("extra, says", [
    ([], "pass --model-dir DIR or set SLUICE_MODEL_DIR"),
    (["--model-dir", "models/tiny", "--no-wait"], "runs in the foreground until Ctrl-C; --no-wait does not apply"),
])
def test_cli_local_deploy_refuses_what_it_cannot_do_in_one_line(extra, says):
    done = subprocess.run([sys.executable, "-m", "deploy", "deploy", DEMO, "--instance-type", "local", *extra],
                          cwd=REPO, env=no_aws_env(), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr and "model_dir=" not in done.stderr


def test_a_cli_killed_with_sigkill_leaves_no_container(tiny_model_dir):
    container_port = free_port()
    command = [sys.executable, "-m", "deploy", "local", "--model-dir", str(tiny_model_dir),
               "--port", str(free_port()), "--container-port", str(container_port)]
    proc, _ = start_until(command, "Press Ctrl-C to stop.", REPO, no_aws_env())
    try:
        assert processes_serving(container_port)
        proc.kill()  # no handler runs: only the orphan guard can stop the container now
        proc.wait()
        assert wait_until_no_process_serves(container_port, ORPHAN_STOP_SECONDS) == []
        assert ping_status(f"http://127.0.0.1:{container_port}") is None
    finally:
        kill_all(processes_serving(container_port))


def test_the_python_api_container_stops_when_its_parent_is_killed(tiny_model_dir):
    parent_code = textwrap.dedent(f"""
        import time
        from deploy import JumpStartModel
        model = JumpStartModel({DEMO!r}, model_dir={str(tiny_model_dir)!r})
        predictor = model.deploy(instance_type="local")
        print("serving", predictor.local_endpoint.container_url, flush=True)
        time.sleep(600)  # a notebook kernel or script that is then killed without delete_endpoint()
    """)
    env = no_aws_env()
    proc, lines = start_until([sys.executable, "-c", parent_code], "serving", REPO, env)
    port = int(lines[-1].rsplit(":", 1)[1])
    try:
        assert ping_status(f"http://127.0.0.1:{port}") == 200
        proc.kill()
        proc.wait()
        assert wait_until_no_process_serves(port, ORPHAN_STOP_SECONDS) == []
        assert ping_status(f"http://127.0.0.1:{port}") is None
    finally:
        kill_all(processes_serving(port))
