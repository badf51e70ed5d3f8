"""The in-process tier: the tiny model loaded in the test process."""

from __future__ import annotations

import pytest
from native_engine import load_tiny_model

from sluice.model.lora_files import linear_shapes


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """The tiny-random model loaded in process through the production loader, float32 on the CPU,
    for the in-process engine tests (exact logits and tokens across batch compositions)."""
    return load_tiny_model(tiny_model_dir)


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    """The same model, one test module's own, for tests that serve LoRA adapters (serving one
    wraps the model's layers, which the shared ``loaded`` must not see), with its adaptable
    layers read before any is wrapped (as the engine's build does): ``(loaded, shapes)``."""
    loaded = load_tiny_model(tiny_model_dir)
    return loaded, linear_shapes(loaded.model)
