"""Helpers for tests of local endpoints' process lifecycles: start a command up to a line it prints,
and find the container processes still serving a port (Linux /proc), so a test can tell that
nothing was left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

READY_TIMEOUT = 300
VLLM_BIN = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin"  # `make install-vllm`
VLLM_START_SECONDS = 300  # vLLM's import and engine start (~15 s here, more on a busy machine)


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child a test stops with SIGINT, as Ctrl-C stops a foreground job: the
    child starts with SIGINT at its default. A shell without job control (``make test &``, a
    script) starts its background jobs with SIGINT ignored, and Python keeps an inherited ignored
    SIGINT, so such a child would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c(proc: subprocess.Popen, timeout: float = 60) -> str:
    """SIGINT to ``proc``, as Ctrl-C, then the rest of its output once it has exited. One still
    running after ``timeout`` is killed, so a failing test leaves nothing behind (its container
    goes with it: ``deploy.local.orphan_guard``), and the test fails."""
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"still running {timeout:g} s after SIGINT") from None
    return output or ""


def start_until(command: list[str], marker: str, cwd, env) -> tuple[subprocess.Popen, list[str]]:
    """Start ``command`` and read its output up to the first line containing ``marker``."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(READY_TIMEOUT, proc.kill)
    watchdog.start()
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if marker in line:
            break
    watchdog.cancel()
    assert proc.poll() is None, "\n".join(lines)
    return proc, lines


def processes_serving(port: int) -> list[int]:
    """Live processes started to serve ``port``: ``container/serve``'s gunicorn master and workers
    carry ``SAGEMAKER_BIND_TO_PORT`` in their environment (an exited one's environment is empty)."""
    needle = f"SAGEMAKER_BIND_TO_PORT={port}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return found


def wait_until_no_process_serves(port: int, timeout: float) -> list[int]:
    """Wait for the processes serving ``port`` to end; returns those still there at ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := processes_serving(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill_all(pids: list[int]) -> None:
    """Clean up after a failed test, so one failure does not leave a server for the next."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
