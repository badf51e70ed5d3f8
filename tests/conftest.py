"""Shared fixtures: the tiny demo model, built once, and real `container/serve` processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploy.local_container import ContainerProcess

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
