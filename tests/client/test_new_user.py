"""What a new user meets first, through the real `container/serve`, `make` and `python -m deploy`.

Each test is one rough edge of issue 13 as the user sees it: the exact line printed and the exit
code. Everything stays on 127.0.0.1 (a hub id is pointed at a closed loopback port).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from deploy.__main__ import build_parser
from deploy.local import SERVE, free_port, ping_status
from local_processes import start_until

REPO = Path(__file__).resolve().parents[2]


def serve_env(**values: str) -> dict[str, str]:
    """The user's shell: the venv on PATH, no hub access, plus ``values``."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", **values}
    return {name: value for name, value in env.items() if value is not None}


def run_serve(cwd, **values: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SERVE)], cwd=cwd, env=serve_env(**values), capture_output=True,
                          text=True, timeout=60)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def no_aws_env(**values: str) -> dict[str, str]:
    """A shell that never configured AWS: no AWS_* variables, no config or credentials file."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return {**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **values}


# --- make serve: a relative model directory, the ready line, the compute type ------------------

def test_serve_takes_a_relative_model_dir_and_prints_a_ready_line_with_a_curl(tiny_model_dir, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny").symlink_to(tiny_model_dir)
    port = free_port()
    proc, lines = start_until([str(SERVE)], "sluice: ready:", tmp_path,
                              serve_env(HF_MODEL_ID="models/tiny", SAGEMAKER_BIND_TO_PORT=str(port)))
    try:
        url = f"http://127.0.0.1:{port}"
        assert lines[0] == f"sluice: serving {tmp_path}/models/tiny on port {port}"
        assert lines[-1] == (
            f"sluice: ready: {url} — try: curl -N {url}/generate_stream "
            "-H 'Content-Type: application/json' "
            """-d '{"inputs": "How do I make cheese?", "parameters": {"max_new_tokens": 32}}'""")
        response = requests.post(f"{url}/generate", timeout=60,
                                 json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
        assert response.status_code == 200
        assert response.headers["x-compute-type"] == "cpu"  # not TGI's GPU value on a CPU
    finally:
        assert stop(proc) == 0


def test_explicit_compute_type_wins_over_the_device_default(start_server):
    server = start_server(env={"COMPUTE_TYPE": "gpu+optimized"})
    response = requests.post(f"{server.url}/generate", timeout=60,
                             json={"inputs": "Hi", "parameters": {"max_new_tokens": 2}})
    assert response.headers["x-compute-type"] == "gpu+optimized"


# --- container/serve: one line and exit 1 before anything binds ----------------------------------

def test_a_model_path_that_does_not_exist_fails_at_once(tmp_path):
    for value, looked_for in (("./models/tiny", tmp_path / "models/tiny"), ("models/tiny/", tmp_path / "models/tiny"),
                              ("~/no/such/model", Path.home() / "no/such/model"), ("a/b/c", tmp_path / "a/b/c")):
        result = run_serve(tmp_path, HF_MODEL_ID=value)
        assert (result.returncode, result.stderr, result.stdout) == (
            1, f"sluice: error: HF_MODEL_ID={value} is not a directory (looked for {looked_for})\n", "")


def test_a_hub_id_without_network_fails_fast_with_one_line(tmp_path):
    closed = free_port()  # nothing listens there: connection refused, like a machine offline
    started = time.monotonic()
    result = run_serve(tmp_path, HF_MODEL_ID="models/tiny", HF_HUB_OFFLINE=None,
                       HF_ENDPOINT=f"http://127.0.0.1:{closed}")
    assert time.monotonic() - started < 10, "huggingface_hub's retries take about 50 s"
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"sluice: error: no network: HF_MODEL_ID=models/tiny is not a directory "
        f"(looked for {tmp_path}/models/tiny) and "
        f"http://127.0.0.1:{closed} cannot be reached (Connection refused); "
        "pass a directory (HF_MODEL_ID=/path/to/model) or set HF_ENDPOINT\n")


def test_offline_hub_id_checks_only_the_local_cache(tmp_path):
    result = run_serve(tmp_path, HF_MODEL_ID="org/name", HF_HOME=str(tmp_path / "hf"),
                       HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert (result.returncode, result.stderr) == (
        1, f"sluice: error: HF_MODEL_ID=org/name is not a directory (looked for {tmp_path}/org/name) "
           "and not in the local hub cache "
           "(HF_HUB_OFFLINE=1); pass a directory (HF_MODEL_ID=/path/to/model)\n")


def test_a_taken_port_is_one_line_not_ten_connection_in_use(tiny_model_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(tmp_path, HF_MODEL_ID=str(tiny_model_dir), SAGEMAKER_BIND_TO_PORT=str(port))
    assert (result.returncode, result.stderr, result.stdout) == (
        1, f"sluice: error: port {port} is in use\n", "")


# --- python -m deploy models: a typo'd filter key -------------------------------------------------

def test_a_filter_on_an_unknown_key_is_an_error_naming_the_known_keys():
    result = subprocess.run([sys.executable, "-m", "deploy", "models", "--filter", "foo == bar"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: Unknown filter key 'foo'; known keys: default_inference_instance_type, "
        "default_instance_type, framework, gated, hf_model_id, instance_type, model_id, "
        "supported_inference_instance_types, task, version\n")


# --- make local / python -m deploy local: ports, credentials, SIGTERM ---------------------------

def test_make_local_and_deploy_local_use_runtime_port_8081_and_make_serve_8080(tiny_model_dir):
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", *args, f"MODEL_DIR={tiny_model_dir}"], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout

    assert build_parser().parse_args(["local"]).port == 8081
    assert re.search(r"-m deploy local --model-dir \S+ --port 8081\s*$", dry_run("local"), re.M)
    assert "--port 9000 --container-port 9001" in dry_run("local", "PORT=9000", "CONTAINER_PORT=9001")
    assert "SAGEMAKER_BIND_TO_PORT=8080 " in dry_run("serve")


def test_make_install_says_what_it_installs_and_shows_pip_progress():
    recipe = subprocess.run(["make", "-n", "-W", "requirements/dev.txt", "install"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    assert "make: installing torch 2.13.0 (CPU) and the serving stack into .venv" in recipe
    big_step = next(line for line in recipe.splitlines() if "-r requirements/dev.txt" in line)
    assert " -q " not in big_step


def test_local_endpoint_needs_no_aws_setup_and_sigterm_stops_its_container(tiny_model_dir):
    port, container_port = free_port(), free_port()
    command = [sys.executable, "-m", "deploy", "local", "--model-dir", str(tiny_model_dir),
               "--port", str(port), "--container-port", str(container_port)]
    proc, banner = start_until(command, "Press Ctrl-C to stop.", REPO, no_aws_env())
    runtime = f"http://127.0.0.1:{port}"
    stopped = False
    try:
        assert banner == [
            f"Endpoint 'sluice-local' ready: runtime API {runtime} -> container "
            f"http://127.0.0.1:{container_port}",
            "In another shell (dummy credentials: the local endpoint checks no signature):",
            f"  export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={runtime} AWS_ENDPOINT_URL_SAGEMAKER={runtime}",
            "  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1",
            banner[4],
            "Press Ctrl-C to stop."]
        assert banner[4].endswith(" invoke sluice-local --stream 'How do I make cheese?'")
        # Pasted as printed into a plain shell (no venv on PATH), the lines stream an answer.
        pasted = subprocess.run(["bash", "-c", "\n".join(banner[2:5])], capture_output=True, text=True,
                                timeout=120, env=no_aws_env(PATH="/usr/bin:/bin"), cwd="/")
        assert pasted.returncode == 0 and pasted.stdout.strip(), pasted.stderr
        invoked = subprocess.run(
            [sys.executable, "-m", "deploy", "invoke", "sluice-local", "--stream", "Once upon a time",
             "--max-new-tokens", "4"], cwd=REPO, capture_output=True, text=True, timeout=120,
            env=no_aws_env(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=runtime))  # no credentials, no region
        assert invoked.returncode == 0, invoked.stderr
        assert invoked.stdout.strip()

        assert stop(proc) == 0
        stopped = True
        assert proc.stdout.read().strip() == "Stopping."
        assert ping_status(f"http://127.0.0.1:{container_port}") is None, "the container outlived it"
    finally:
        if not stopped:
            stop(proc)
