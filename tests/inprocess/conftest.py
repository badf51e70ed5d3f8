"""The in-process tier: the tiny model loaded in the test process."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def loaded(tiny_model_dir):
    """The tiny-random model loaded in process through the production loader, float32 on the CPU,
    for the in-process engine tests (exact logits and tokens across batch compositions)."""
    from sluice.config import Config
    from sluice.model.loading import load_model
    return load_model(Config.from_environ({"HF_MODEL_ID": str(tiny_model_dir), "SLUICE_DEVICE": "cpu",
                                           "DTYPE": "float32"}))
