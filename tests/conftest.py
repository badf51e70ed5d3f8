"""Shared fixtures: the tiny demo model, built once, and real `container/serve` processes.

The tests are in tiers, by folder: ``unit`` (no server, no model: seconds; ``make test-fast``),
``inprocess`` (the tiny model in the test process), ``server`` (the real ``container/serve``),
``vllm`` (the vLLM engine, from .venv-vllm), ``client`` (the deploy package, the local endpoint,
moto, the SDK, the CLI, the notebook) and ``packaging`` (Dockerfile, image, buildspec). Helpers
every tier may use are modules here (``http_client``, ``fake_engine``, ``grammar_cases``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.local import ContainerProcess

# DTYPE=auto is bf16 on a CPU with native bf16 matmul; in bf16 a row's greedy tokens can change
# with what it is batched with, and the suite compares outputs across batch compositions.
# Servers inherit this; a test of DTYPE=auto passes it explicitly.
os.environ.setdefault("DTYPE", "float32")

REPO = Path(__file__).resolve().parent.parent
MODEL_CACHE = Path(os.environ.get("SLUICE_TEST_MODEL_CACHE", REPO / ".cache" / "models"))


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
def trained_tiny_model_dir() -> Path:
    """The default demo model (`make serve`): briefly trained, so it ends answers with EOS."""
    from demo.build_model import build
    return build("tiny", MODEL_CACHE / "tiny")


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir) -> dict[str, Path]:
    """Two random PEFT LoRA adapters of the tiny-random model (demo.build_adapter, seeds 1 and 2):
    each makes greedy output differ from the base model's."""
    from demo.build_adapter import build_adapter
    root = MODEL_CACHE / "adapters" / tiny_model_dir.name
    return {name: build_adapter(tiny_model_dir, root / name, seed=seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture(scope="session")
def server(tiny_model_dir):
    """One real server (gunicorn via container/serve) shared by the read-only tests."""
    # The cache is off here so that repeated requests really exercise the engine.
    process = ContainerProcess(tiny_model_dir, env={"MAX_CONCURRENT_REQUESTS": "64", "RESPONSE_CACHE_SIZE": "0"})
    with process:
        yield process


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
