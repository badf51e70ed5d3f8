"""Run the Sluice container as a plain local process, exactly as SageMaker starts it.

SageMaker runs ``docker run IMAGE serve``; from a checkout the same entrypoint is
``container/serve`` with ``HF_MODEL_ID`` and ``SAGEMAKER_BIND_TO_PORT`` in the environment. This
module starts it, waits until ``/ping`` answers 200, and stops it with SIGTERM the way SageMaker
does, so the local endpoint, the tests, the notebook and the benchmark all share one launcher.
An `OrphanGuard` stops it too if this process dies without stopping it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

from deploy.errors import ContainerStartError
from deploy.local.checkout import PACKAGE_CHECKOUT, SERVE_IN_CHECKOUT, find_checkout, serving_bin_dir
from deploy.local.health import free_port, wait_until_healthy
from deploy.local.orphan_guard import OrphanGuard

SERVE = PACKAGE_CHECKOUT / SERVE_IN_CHECKOUT  # this checkout's entrypoint (absent when installed)


class ContainerProcess:
    """``container/serve`` as a child process on 127.0.0.1; also a context manager."""

    def __init__(self, model_dir: str | os.PathLike, port: int | None = None,
                 env: dict[str, str] | None = None, log_path: str | os.PathLike | None = None,
                 bin_dir: str | os.PathLike | None = None, checkout: str | os.PathLike | None = None):
        """``checkout``: the Sluice checkout to serve from (`find_checkout`: by default
        ``$SLUICE_CHECKOUT`` or the one this package runs from). ``bin_dir``: the environment to
        serve from (e.g. ``.venv-vllm/bin`` for the vLLM engine); by default this interpreter's
        when it has the serving stack, else the checkout's ``.venv``."""
        self.checkout = find_checkout(checkout)
        self.bin_dir = Path(bin_dir) if bin_dir else serving_bin_dir(self.checkout)
        self.model_dir = str(Path(model_dir).resolve())  # serve runs gunicorn with --chdir
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.log_path = Path(log_path) if log_path else Path(
            tempfile.mkstemp(prefix="sluice-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self._guard: OrphanGuard | None = None

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
        self.proc = subprocess.Popen([str(self.checkout / SERVE_IN_CHECKOUT)], cwd=str(self.checkout), env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._guard = OrphanGuard.for_process_group(self.proc.pid)  # its own session: pid == pgid
        return self

    def wait_ready(self, timeout: float = 120.0) -> "ContainerProcess":
        try:
            wait_until_healthy(self.url, timeout, exited=self._exit_reason)
        except ContainerStartError as error:
            raise ContainerStartError(f"{error}:\n{self.log_tail()}") from None
        return self

    def _exit_reason(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            self._release_guard()  # reaped: its pid may be reused, so nobody may signal it any more
            return f"container/serve exited with {self.proc.returncode}"
        return None

    def _release_guard(self) -> None:
        if self._guard is not None:
            self._guard.release()
            self._guard = None

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
        self._release_guard()
        return self.proc.returncode

    def __enter__(self) -> "ContainerProcess":
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()
