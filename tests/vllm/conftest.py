"""The vLLM tier: ONE real server on the vLLM engine, from .venv-vllm (``make install-vllm``);
every test here skips with the reason when that environment is absent."""

from __future__ import annotations

import time

import pytest

from deploy.local import ContainerProcess, ping_status
from local_processes import VLLM_BIN, VLLM_START_SECONDS


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
    """ONE real server on the vLLM engine, from .venv-vllm, shared by every test of this tier.

    Four slots (the 429 test fills them), no cache, one thread (the CI machine is shared),
    1 GiB of KV cache (vLLM's CPU default would take a quarter of the memory), two LoRA adapter
    slots (test_vllm_adapters; requests without an adapter run as without LoRA), stateful
    sessions on (they change nothing for a request that names no session), and two settings only
    the embedded engine reads, which this one must name at start as ignored (test_vllm_start_up_settings).
    """
    if not (VLLM_BIN / "python").exists():
        pytest.skip(f"the vLLM engine needs {VLLM_BIN.parent.name} (make install-vllm)")
    env = {"SLUICE_ENGINE": "vllm", "DTYPE": "auto", "MAX_CONCURRENT_REQUESTS": "4", "RESPONSE_CACHE_SIZE": "0",
           "SLUICE_TORCH_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "MAX_LORA_ADAPTERS": "2",
           "SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true", "SLUICE_WARMUP": "0", "SLUICE_FUSED_PREFILL": "0"}
    process = ContainerProcess(tiny_model_dir, env=env, bin_dir=VLLM_BIN).start()
    try:
        process.first_ping = _first_ping_status(process)
        yield process.wait_ready(timeout=VLLM_START_SECONDS)
    finally:
        process.stop()
