"""The peer server's process, and memory figures of a server's process tree, from /proc.

``transformers serve`` is started the way its docs show, offline and bound to 127.0.0.1, in its
own session so it can be stopped with everything it spawned. Peak RSS is the kernel's high-water
mark (VmHWM) of each process in the tree; writing 5 to /proc/PID/clear_refs resets it, so every
load level gets its own peak rather than the maximum so far (reset is best effort: without the
right, the figure is the peak since the process started, and the JSON says so).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.clients import get_latency


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    except OSError:
        pass
    return found


def process_tree(root: int) -> list[int]:
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += _children(pid)
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(root: int) -> bool:
    """Resets VmHWM of every process in the tree; False if the kernel refused."""
    ok = True
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            ok = False
    return ok


def peak_rss_mib(root: int) -> dict:
    """Sum of the tree's VmHWM (an upper bound of the tree's peak), plus the largest process."""
    peaks = {pid: _status_kib(pid, "VmHWM") for pid in process_tree(root)}
    return {"tree_peak_rss_mib": sum(peaks.values()) / 1024,
            "largest_process_peak_rss_mib": max(peaks.values(), default=0) / 1024,
            "processes": len(peaks)}


class PeerServer:
    """`transformers serve --continuous-batching` on 127.0.0.1, pinned to one model."""

    def __init__(self, model_dir: str, port: int, device: str, num_blocks: int, max_batch_tokens: int):
        self.url = f"http://127.0.0.1:{port}"
        exe = Path(sys.executable).parent / "transformers"
        self.argv = [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                     "--device", device, "--continuous-batching", "--cb-num-blocks", str(num_blocks),
                     "--cb-max-batch-tokens", str(max_batch_tokens), "--log-level", "warning"]
        self.log_path = Path(tempfile.mkstemp(prefix="bench-transformers-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "PeerServer":
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            if get_latency(self.url, "/health", timeout=2.0) is not None:
                return self
            time.sleep(0.25)
        raise RuntimeError(f"transformers serve not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
