"""The built image against the SageMaker container contract, through a real Docker engine.

SageMaker runs ``docker run IMAGE serve`` with the model at /opt/ml/model, polls ``GET /ping``
(never 200 before the model can serve), sends ``POST /invocations`` (streaming decided by the
body) and stops the container with SIGTERM, then SIGKILL 30 s later. docker/build-image.sh builds
the image from nothing without a registry; these tests skip, saying why, when no engine can run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.local import free_port, wait_until_healthy

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
ENGINE_NOT_AVAILABLE = 3
READY_TIMEOUT = 180.0
PROMPT = "The river"
GREEDY = {"max_new_tokens": 8, "do_sample": False, "return_full_text": False, "details": True}


@pytest.fixture(scope="session")
def sluice_image() -> str:
    """The image built by docker/build-image.sh (which reuses every finished step)."""
    engine = subprocess.run([str(REPO / "docker" / "ensure-engine.sh")], capture_output=True,
                            text=True)
    if engine.returncode == ENGINE_NOT_AVAILABLE:
        pytest.skip(f"no Docker engine: {engine.stderr.strip()}")
    assert engine.returncode == 0, engine.stderr
    build = subprocess.run([str(REPO / "docker" / "build-image.sh")], capture_output=True,
                           text=True, timeout=1200,
                           env={**os.environ, "PYTHON": sys.executable})
    assert build.returncode == 0, build.stderr[-4000:]
    return build.stdout.strip().splitlines()[-1]


class RunningContainer:
    """One ``docker run IMAGE serve`` on loopback; records every /ping answer until ready."""

    def __init__(self, image: str, model_dir: Path, bind_port: bool = True):
        self.name = f"sluice-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        network = (["--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={self.port}"] if bind_port
                   else ["-p", f"127.0.0.1:{self.port}:8080"])
        subprocess.run(["docker", "run", "-d", "--name", self.name, *network,
                        "-v", f"{model_dir}:/opt/ml/model:ro", image, "serve"],
                       check=True, capture_output=True, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.pings: list[int | None] = []

    def wait_ready(self) -> "RunningContainer":
        def exited() -> str | None:
            return None if self.state()["Running"] else f"container exited:\n{self.logs()}"

        wait_until_healthy(self.url, READY_TIMEOUT, exited=exited, on_ping=self.pings.append)
        return self

    def state(self) -> dict:
        out = subprocess.run(["docker", "inspect", "-f", "{{json .State}}", self.name],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return (result.stdout + result.stderr)[-4000:]

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def container(sluice_image, tiny_model_dir):
    running = RunningContainer(sluice_image, Path(tiny_model_dir).resolve())
    try:
        yield running.wait_ready()
    finally:
        running.remove()


def invoke(url: str, body: dict, timeout: float = 60.0):
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=timeout)


def test_ping_says_503_or_refuses_until_ready_then_200(container):
    *before, ready = container.pings
    assert ready == 200
    assert set(before) <= {None, 503}, container.pings
    with invoke(container.url, {"inputs": PROMPT, "parameters": GREEDY}) as response:
        assert response.status == 200  # 200 on /ping meant the model can serve


def test_invocations_returns_a_tgi_list(container):
    with invoke(container.url, {"inputs": PROMPT, "parameters": GREEDY}) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(response.read())
    assert isinstance(body, list) and len(body) == 1
    assert isinstance(body[0]["generated_text"], str)
    assert 0 < body[0]["details"]["generated_tokens"] <= GREEDY["max_new_tokens"]


def test_streaming_invocation_is_sse_and_matches_the_plain_answer(container):
    with invoke(container.url, {"inputs": PROMPT, "parameters": GREEDY}) as response:
        plain = json.loads(response.read())[0]["generated_text"]
    with invoke(container.url, {"inputs": PROMPT, "parameters": GREEDY, "stream": True}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.read().decode()
    assert raw.endswith("\n\n")
    events = [json.loads(chunk.removeprefix("data: ")) for chunk in raw.split("\n\n")[:-1]
              if not chunk.startswith(":")]
    assert all(chunk.startswith(("data: ", ":")) for chunk in raw.split("\n\n")[:-1])
    first = events[0]["index"]
    assert [event["index"] for event in events] == list(range(first, first + len(events)))
    assert all(event["generated_text"] is None for event in events[:-1])
    assert events[-1]["generated_text"] == plain
    assert events[-1]["details"]["generated_tokens"] == len(events)


def test_real_boto3_client_through_a_docker_local_endpoint(sluice_image, tiny_model_dir):
    local_endpoint = pytest.importorskip("deploy.local.endpoint")
    body = json.dumps({"inputs": PROMPT, "parameters": GREEDY}).encode()
    with local_endpoint.LocalEndpoint(tiny_model_dir, endpoint_name="sluice-docker",
                                      use_docker=True, image=sluice_image) as endpoint:
        client = endpoint.client()
        answer = client.invoke_endpoint(EndpointName="sluice-docker", Body=body,
                                        ContentType="application/json")
        generated = json.loads(answer["Body"].read())[0]["generated_text"]
        streamed = client.invoke_endpoint_with_response_stream(
            EndpointName="sluice-docker", ContentType="application/json",
            Body=json.dumps({"inputs": PROMPT, "parameters": GREEDY, "stream": True}).encode())
        payload = b"".join(event["PayloadPart"]["Bytes"] for event in streamed["Body"]
                           if "PayloadPart" in event)
    last = json.loads(payload.decode().strip().split("\n\n")[-1].removeprefix("data: "))
    assert last["generated_text"] == generated


def test_serves_on_8080_by_default_and_exits_0_within_30_s_of_sigterm(sluice_image,
                                                                     tiny_model_dir):
    """SageMaker's lifecycle: no SAGEMAKER_BIND_TO_PORT means 8080; scale-in sends SIGTERM."""
    running = RunningContainer(sluice_image, Path(tiny_model_dir).resolve(), bind_port=False)
    try:
        running.wait_ready()
        with invoke(running.url, {"inputs": PROMPT, "parameters": GREEDY}) as response:
            assert response.status == 200
        started = time.monotonic()
        # docker stop: SIGTERM, then SIGKILL after 30 s, exactly SageMaker's shutdown.
        subprocess.run(["docker", "stop", "-t", "30", running.name], check=True,
                       capture_output=True)
        elapsed = time.monotonic() - started
        state = running.state()
        assert state["ExitCode"] == 0, running.logs()
        assert not state["OOMKilled"]
        assert elapsed < 29, f"took {elapsed:.1f} s: SIGTERM was not handled, SIGKILL ended it"
    finally:
        running.remove()


def test_image_holds_the_server_but_no_model_weights_or_host_caches(sluice_image):
    script = ("test -x /opt/program/serve && command -v serve && "
              "find / -xdev \\( -name '*.safetensors' -o -name 'pytorch_model*.bin' \\) "
              "-not -path '/opt/venv/*' -not -path '/proc/*' | head -n 5 && "
              "find /opt/program -name __pycache__ | head -n 5")
    result = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                             "bash", sluice_image, "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/opt/program/serve"]
