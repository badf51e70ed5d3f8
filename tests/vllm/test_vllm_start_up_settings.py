"""Settings the vLLM engine cannot honour stop or mark its start with one clear line, as the
house rule asks of every feature the two engines do not share (docs/engines.md). Each test
starts its own short-lived server from .venv-vllm; skips when that environment is absent."""

from __future__ import annotations

import time

import pytest

from deploy.local import ContainerProcess
from local_processes import VLLM_BIN, VLLM_START_SECONDS

pytestmark = pytest.mark.vllm


@pytest.fixture(autouse=True)
def _needs_vllm_env():
    if not (VLLM_BIN / "python").exists():
        pytest.skip(f"the vLLM engine needs {VLLM_BIN.parent.name} (make install-vllm)")


def _exit_of(process: ContainerProcess) -> int:
    deadline = time.monotonic() + VLLM_START_SECONDS
    while process.proc.poll() is None:
        assert time.monotonic() < deadline, process.log_tail()
        time.sleep(0.1)
    return process.proc.returncode


def test_dtype_float64_which_vllm_has_no_kernels_for_stops_the_start_with_one_line(tiny_model_dir):
    """The embedded engine serves DTYPE=float64; vLLM refused it with a pydantic dump of
    ModelConfig's literals over eight lines. Now: exit 3 and one line naming the engine and
    the values it takes."""
    env = {"SLUICE_ENGINE": "vllm", "DTYPE": "float64", "SLUICE_TORCH_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = ContainerProcess(tiny_model_dir, env=env, bin_dir=VLLM_BIN).start()
    try:
        assert _exit_of(process) == 3, process.log_tail()
    finally:
        process.stop()
    errors = [line for line in process.log_text().splitlines() if line.startswith("sluice: error:")]
    assert errors == ["sluice: error: model loading failed: ConfigError: DTYPE=float64 is not supported by "
                      "the vllm engine (SLUICE_ENGINE=vllm); it takes auto, float32, float16 or bfloat16"], errors
    assert "pydantic" not in process.log_text()


def test_settings_only_the_embedded_engine_reads_are_named_at_start_as_ignored(vllm_server):
    """The shared server sets SLUICE_WARMUP=0 and SLUICE_FUSED_PREFILL=0: vLLM runs its own
    profiling pass and mixes prefill and decode whatever they say, so the start says so once."""
    lines = [line for line in vllm_server.log_text().splitlines() if "ignored by the vllm engine" in line]
    assert len(lines) == 1, vllm_server.log_tail()
    assert lines[0].endswith("ignored by the vllm engine serving here (SLUICE_ENGINE=vllm): "
                             "SLUICE_FUSED_PREFILL, SLUICE_WARMUP (read by the sluice engine only)"), lines
