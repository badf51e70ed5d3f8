"""Shared fixtures: the tiny demo model, built once, and real `container/serve` processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deploy.local import ContainerProcess, ping_status

# DTYPE=auto is bf16 on a CPU with native bf16 matmul; in bf16 a row's greedy tokens can change
# with what it is batched with, and the suite compares outputs across batch compositions.
# Servers inherit this; a test of DTYPE=auto passes it explicitly.
os.environ.setdefault("DTYPE", "float32")

REPO = Path(__file__).resolve().parent.parent
MODEL_CACHE = Path(os.environ.get("SLUICE_TEST_MODEL_CACHE", REPO / ".cache" / "models"))
VLLM_BIN = REPO / ".venv-vllm" / "bin"  # `make install-vllm`
VLLM_START_SECONDS = 300  # vLLM's import and engine start (~15 s here, more on a busy machine)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny demo architecture, untrained: every request runs to its max_new_tokens.

    Built offline through the production `save_pretrained` path, in about a second.
    """
    if os.environ.get("SLUICE_TEST_MODEL_DIR"):  # run the suite against another model directory
        return Path(os.environ["SLUICE_TEST_MODEL_DIR"])
    from demo.build_model import build
    return build("tiny-random", MODEL_CACHE / "tiny-random")


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """The tiny-random model loaded in process through the production loader, float32 on the CPU,
    for the in-process engine tests (exact logits and tokens across batch compositions)."""
    from sluice.config import Config
    from sluice.model.loading import load_model
    return load_model(Config.from_environ({"HF_MODEL_ID": str(tiny_model_dir), "SLUICE_DEVICE": "cpu",
                                           "DTYPE": "float32"}))


@pytest.fixture(scope="session")
def trained_tiny_model_dir() -> Path:
    """The default demo model (`make serve`): briefly trained, so it ends answers with EOS."""
    from demo.build_model import build
    return build("tiny", MODEL_CACHE / "tiny")


@pytest.fixture(scope="session")
def server(tiny_model_dir):
    """One real server (gunicorn via container/serve) shared by the read-only tests."""
    # The cache is off here so that repeated requests really exercise the engine.
    process = ContainerProcess(tiny_model_dir, env={"MAX_CONCURRENT_REQUESTS": "64", "RESPONSE_CACHE_SIZE": "0"})
    with process:
        yield process


def _first_ping_status(process: ContainerProcess, timeout: float = 30.0) -> int | None:
    """The first /ping answer once the port is open (vLLM is then still starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.proc.poll() is None:
        status = ping_status(process.url, timeout=1)
        if status is not None:
            return status
        time.sleep(0.05)
    return None


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir):
    """ONE real server on the vLLM engine, from .venv-vllm, shared by tests/test_vllm_engine.py.

    Four slots (the 429 test fills them), no cache, one thread (the CI machine is shared) and
    1 GiB of KV cache: vLLM's CPU default would take a quarter of the memory.
    """
    if not (VLLM_BIN / "python").exists():
        pytest.skip(f"the vLLM engine needs {VLLM_BIN.parent.name} (make install-vllm)")
    env = {"SLUICE_ENGINE": "vllm", "DTYPE": "auto", "MAX_CONCURRENT_REQUESTS": "4", "RESPONSE_CACHE_SIZE": "0",
           "SLUICE_TORCH_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = ContainerProcess(tiny_model_dir, env=env, bin_dir=VLLM_BIN).start()
    try:
        process.first_ping = _first_ping_status(process)
        yield process.wait_ready(timeout=VLLM_START_SECONDS)
    finally:
        process.stop()


@pytest.fixture
def start_server(tiny_model_dir):
    """Factory for servers with their own environment; all are stopped at teardown."""
    started = []

    def start(env: dict | None = None, model_dir=None, wait: bool = True) -> ContainerProcess:
        process = ContainerProcess(model_dir or tiny_model_dir, env=env).start()
        started.append(process)
        return process.wait_ready() if wait else process

    yield start
    for process in started:
        process.stop()
