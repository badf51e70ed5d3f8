"""Wiring for ``SLUICE_ENGINE=sluice``: config -> loaded model -> runner, budget, prefix cache ->
a started ``NativeEngine``. What every engine shares (validator, grammars, service) is wired once,
in ``sluice.bootstrap``."""

from __future__ import annotations

import logging

from ...config import Config
from ...model.facts import KV_MEMORY_FRACTION, eos_token_ids, free_memory_bytes, kv_bytes_per_token
from ...model.loading import LoadedModel, configure_threads, load_model
from ...model.lora_files import linear_shapes
from ..base import EngineBuild
from .adapters import NativeAdapters
from .engine import NativeEngine
from .lora import LoraLayers
from .model_runner import ModelRunner
from .prefix_cache import PrefixCache
from .scheduler import SchedulerBudget
from .warmup import warm_up
from .watermark import Watermark

log = logging.getLogger("sluice.bootstrap")

PREFIX_CACHE_SHARE = 8  # the prefix cache holds up to 1/8 of the KV budget's tokens, on top of it
DEFAULT_MAX_LORA_ADAPTERS = 8  # adapters held in memory at once when MAX_LORA_ADAPTERS is unset


def scheduler_budget(config: Config, loaded: LoadedModel, max_input: int, max_total: int) -> SchedulerBudget:
    total = config.max_batch_total_tokens
    if total is None:
        kv_bytes = kv_bytes_per_token(loaded.model.config, loaded.dtype.itemsize)
        affordable = int(free_memory_bytes(loaded.device.type) * KV_MEMORY_FRACTION) // kv_bytes
        total = max(max_total, min(affordable, 1 << 20))
    prefill = config.max_batch_prefill_tokens or max_input + 50
    return SchedulerBudget(max_batch_total_tokens=total, max_batch_prefill_tokens=prefill,
                           max_batch_size=config.max_batch_size)


def logits_width(model) -> int:
    """The vocabulary the logits cover (often padded past the tokenizer's)."""
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return int(embeddings.weight.shape[0])
    if embeddings is not None and getattr(embeddings, "out_features", None):
        return int(embeddings.out_features)  # a packed output layer (model/packed_linear) has no weight
    return int(model.config.vocab_size)


def native_adapters(config: Config, loaded: LoadedModel) -> tuple[NativeAdapters | None, LoraLayers | None]:
    """The adapter bank and the model's adaptable layers; none with MAX_LORA_ADAPTERS=0. No layer
    is wrapped until a pass needs it, so serving without adapters costs nothing."""
    capacity = DEFAULT_MAX_LORA_ADAPTERS if config.max_lora_adapters is None else config.max_lora_adapters
    if capacity == 0:
        return None, None
    layers = LoraLayers(loaded.model, loaded.dtype)
    return NativeAdapters(layers, linear_shapes(loaded.model), capacity, config.max_lora_rank), layers


def build(config: Config) -> EngineBuild:
    """Load the model in this worker and start the native engine on it."""
    threads = configure_threads(config)
    loaded = load_model(config)
    limits = config.token_limits(loaded.max_position_embeddings)
    budget = scheduler_budget(config, loaded, limits.max_input_tokens, limits.max_total_tokens)
    tokenizer = loaded.tokenizer
    adapters, layers = native_adapters(config, loaded)
    runner = ModelRunner(loaded.model, loaded.device, tokenizer.pad_token_id, loaded.dtype_reason,
                         loaded.linear_kernels, fuse=config.fused_prefill, lora=layers)
    log.info("fused prefill: %s", runner.fused_pass)  # checked on the loaded model, before serving
    eos_ids = eos_token_ids(getattr(loaded.model, "generation_config", None), tokenizer)
    engine = NativeEngine(runner, tokenizer, budget, eos_ids, frozenset(tokenizer.all_special_ids),
                          PrefixCache(budget.max_batch_total_tokens // PREFIX_CACHE_SHARE), adapters,
                          Watermark(config.watermark_gamma, config.watermark_delta)).start()
    log.info("serving with %d torch threads, limits %s, budget %s", threads, limits, budget)
    if config.warmup:
        vocabulary = min(len(tokenizer), logits_width(loaded.model))
        warmup = warm_up(engine, budget, limits, config.max_concurrent_requests, vocabulary)
        log.info("warm-up: %s", warmup.describe())
    else:
        log.info("warm-up: off (SLUICE_WARMUP=0)")
    return EngineBuild(engine, tokenizer, limits, logits_width(loaded.model), eos_ids, loaded.device.type)
