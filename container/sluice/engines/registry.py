"""``SLUICE_ENGINE`` -> the engine that serves: each name is a folder under ``engines/`` whose
``build`` module has ``build(config) -> EngineBuild``.

Adding an engine (SGLang, TensorRT-LLM) is its folder and its line in ``ENGINES`` (the name is
also one of ``config.ENGINES``, the values the environment may give; a test keeps the two equal).
An engine's folder is imported only when that engine is chosen, so an engine library that is not
installed, or not selected, costs nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

from ..config import Config, ConfigError
from .base import EngineBuild
from .engine_settings import unused_settings_line

log = logging.getLogger("sluice.engines")

# SLUICE_ENGINE value -> the folder under engines/ that implements it.
ENGINES = {"sluice": "native", "vllm": "vllm"}


def choose_engine(config: Config) -> str:
    """``SLUICE_ENGINE``: ``auto`` is vllm only where it pays (importable and a CUDA device)."""
    installed = importlib.util.find_spec("vllm") is not None
    if config.engine == "vllm" and not installed:
        raise ConfigError("SLUICE_ENGINE=vllm but vllm is not installed (make install-vllm)")
    if config.engine != "auto":
        return config.engine
    import torch  # here, not at import: the registry is read where torch is not wanted yet

    return "vllm" if installed and config.device != "cpu" and torch.cuda.is_available() else "sluice"


def build_engine(config: Config) -> EngineBuild:
    """Build and start the engine ``config`` selects (slow: it loads the model)."""
    engine = choose_engine(config)
    if (line := unused_settings_line(config, engine)) is not None:
        log.warning(line)
    folder = ENGINES[engine]
    return importlib.import_module(f"{__package__}.{folder}.build").build(config)
