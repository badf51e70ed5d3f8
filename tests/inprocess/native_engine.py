"""The native engine on the loaded tiny model, as the in-process tests drive it: built but not
started (so a test can arrange its sequences first), requests validated as serving does, and a
sequence's events drained to its token ids and the error that ended it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from sluice.config import Config, TokenLimits
from sluice.engines.native.adapters import NativeAdapters
from sluice.engines.native.engine import NativeEngine
from sluice.engines.native.lora import LoraLayers
from sluice.engines.native.model_runner import ModelRunner
from sluice.engines.native.prefix_cache import PrefixCache
from sluice.engines.native.scheduler import SchedulerBudget
from sluice.model.facts import eos_token_ids
from sluice.model.loading import load_model
from sluice.protocols.tgi.body import parse_generate_body
from sluice.request import AdapterRef, AdapterSpec, RequestLimits
from sluice.serving.validation import Validator
from sluice.text.events import ErrorEvent

EVENT_TIMEOUT = 60


def runner_of(loaded, fuse: bool = True) -> ModelRunner:
    return ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id, fuse=fuse)


def make_engine(loaded, runner: ModelRunner | None = None, chunk: int = 4096,
                kv_tokens: int = 100_000, prefix_cache=None, adapters=None) -> NativeEngine:
    """An engine over ``runner`` (a plain one by default), prefilling ``chunk`` tokens a pass."""
    return NativeEngine(runner or runner_of(loaded), loaded.tokenizer, SchedulerBudget(kv_tokens, chunk),
                        eos_token_ids(loaded.model.generation_config, loaded.tokenizer),
                        frozenset(loaded.tokenizer.all_special_ids), prefix_cache, adapters)


def load_tiny_model(model_dir: Path):
    """The tiny-random model as production loads it: float32 on the CPU, oneDNN-packed linears."""
    return load_model(Config.from_environ({"HF_MODEL_ID": str(model_dir), "SLUICE_DEVICE": "cpu",
                                           "DTYPE": "float32"}))


def adapter_engine(loaded, shapes, adapter_dirs: dict[str, Path], capacity: int = 2,
                   prefix_tokens: int = 4096) -> tuple[NativeEngine, dict[str, AdapterRef]]:
    """A native engine (not started) serving ``adapter_dirs`` (uids 1, 2, ... in name order, so two
    such engines give the same names the same refs), with a prefix cache of ``prefix_tokens``
    (0: none); ``shapes``: the model's adaptable layers, read before any was wrapped."""
    runner = ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id,
                         lora=LoraLayers(loaded.model, torch.float32))
    adapters = NativeAdapters(runner.lora, shapes, capacity, max_rank=16)
    engine = make_engine(loaded, runner, prefix_cache=PrefixCache(prefix_tokens) if prefix_tokens else None,
                         adapters=adapters)
    refs = {}
    for uid, (name, path) in enumerate(sorted(adapter_dirs.items()), start=1):
        refs[name] = AdapterRef(name, uid)
        adapters.add(AdapterSpec(refs[name], str(path)))
    return engine, refs


def with_adapter(valid, ref: AdapterRef | None):
    """``valid`` run with ``ref`` (None: the base model), as serving resolves a selection."""
    return dataclasses.replace(valid, adapter=ref)


def request(loaded, prompt: str, **parameters):
    """``prompt`` as a validated request (24 new tokens unless ``max_new_tokens`` is given)."""
    validator = Validator(loaded.tokenizer, TokenLimits(max_input_tokens=512, max_total_tokens=1024), 20)
    parameters.setdefault("max_new_tokens", 24)
    return validator.validate(parse_generate_body({"inputs": prompt, "parameters": parameters}, RequestLimits()))


def drain(sequence) -> tuple[list[int], Exception | None]:
    """The token ids a sequence published and the error that ended it, if any."""
    ids = []
    while True:
        event = sequence.events.get(timeout=EVENT_TIMEOUT)
        if isinstance(event, ErrorEvent):
            return ids, event.error
        ids.append(event.token.id)
        if event.finish is not None:
            return ids, None
