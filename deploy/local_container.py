"""Run the Sluice container as a plain local process, exactly as SageMaker starts it.

SageMaker runs ``docker run IMAGE serve``; from a checkout the same entrypoint is
``container/serve`` with ``HF_MODEL_ID`` and ``SAGEMAKER_BIND_TO_PORT`` in the environment. This
module starts it, waits until ``/ping`` answers 200, and stops it with SIGTERM the way SageMaker
does, so the local endpoint, the tests, the notebook and the benchmark all share one launcher.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.errors import SluiceError

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVE = REPO_ROOT / "container" / "serve"


class ContainerStartError(SluiceError, RuntimeError):
    """The container exited or never became healthy; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of ``GET {url}/ping``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class ContainerProcess:
    """``container/serve`` as a child process on 127.0.0.1; also a context manager."""

    def __init__(self, model_dir: str | os.PathLike, port: int | None = None,
                 env: dict[str, str] | None = None, log_path: str | os.PathLike | None = None,
                 bin_dir: str | os.PathLike | None = None):
        """``bin_dir``: the environment to serve from (e.g. ``.venv-vllm/bin`` for the vLLM
        engine); by default the one running this process."""
        self.bin_dir = Path(bin_dir) if bin_dir else Path(sys.executable).parent
        self.model_dir = str(Path(model_dir).resolve())  # serve runs gunicorn with --chdir
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.log_path = Path(log_path) if log_path else Path(
            tempfile.mkstemp(prefix="sluice-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ContainerProcess":
        env = dict(os.environ)
        # The serving environment's bin goes first, as `make serve` does.
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.update({"HF_MODEL_ID": self.model_dir, "SAGEMAKER_BIND_TO_PORT": str(self.port),
                    "HF_HUB_OFFLINE": "1"})
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(SERVE)], cwd=str(REPO_ROOT), env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout: float = 120.0) -> "ContainerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ContainerStartError(
                    f"container/serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            if ping_status(self.url) == 200:
                return self
            time.sleep(0.1)
        raise ContainerStartError(f"/ping not 200 after {timeout:.0f} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` (SageMaker's window); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "ContainerProcess":
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
