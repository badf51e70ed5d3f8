"""Wiring: config -> loaded model -> runner, engine, validator -> the generation service."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import torch

from .config import Config, ConfigError
from .engine.batching import Engine, SchedulerBudget
from .engine.prefix_cache import PrefixCache
from .model.loading import LoadedModel, configure_threads, default_compute_type, eos_token_ids, load_model
from .engine.model_runner import ModelRunner
from .request import RequestLimits
from .serving.grammar import GrammarCompiler, GrammarLimits
from .serving.metrics import Metrics
from .serving.response_cache import ResponseCache
from .serving.service import GenerationService
from .serving.validation import Validator

log = logging.getLogger("sluice.bootstrap")

KV_MEMORY_FRACTION = 0.3  # of the memory left after loading, when MAX_BATCH_TOTAL_TOKENS is unset
PREFIX_CACHE_SHARE = 8  # the prefix cache holds up to 1/8 of the KV budget's tokens, on top of it


def kv_bytes_per_token(loaded: LoadedModel) -> int:
    cfg = loaded.model.config.get_text_config() if hasattr(loaded.model.config, "get_text_config") else loaded.model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    element = torch.tensor([], dtype=loaded.dtype).element_size()
    return 2 * cfg.num_hidden_layers * heads * head_dim * element


def free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def scheduler_budget(config: Config, loaded: LoadedModel, max_input: int, max_total: int) -> SchedulerBudget:
    total = config.max_batch_total_tokens
    if total is None:
        affordable = int(free_memory_bytes(loaded.device) * KV_MEMORY_FRACTION) // kv_bytes_per_token(loaded)
        total = max(max_total, min(affordable, 1 << 20))
    prefill = config.max_batch_prefill_tokens or max_input + 50
    return SchedulerBudget(max_batch_total_tokens=total, max_batch_prefill_tokens=prefill,
                           max_batch_size=config.max_batch_size)


def grammar_compiler(config: Config, tokenizer, vocab_size: int, eos_ids: frozenset[int]) -> GrammarCompiler | None:
    """llguidance's view of the tokenizer, for grammars; None (grammar is a 422) when disabled
    or when the tokenizer is not a fast one (llguidance reads the Rust tokenizer's JSON). Both
    engines validate and bound grammars with it, so an invalid grammar is the same 422 on both."""
    if config.disable_grammar_support:
        return None
    limits = GrammarLimits(max_source_bytes=config.grammar_max_bytes,
                           compile_seconds=float(config.grammar_compile_timeout))
    try:
        return GrammarCompiler.for_tokenizer(tokenizer, vocab_size, eos_ids, limits)
    except Exception:
        log.exception("grammar support is off: llguidance cannot read this tokenizer")
        return None


def logits_width(model) -> int:
    """The vocabulary the logits cover (often padded past the tokenizer's)."""
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if embeddings is not None and getattr(embeddings, "weight", None) is not None:
        return int(embeddings.weight.shape[0])
    if embeddings is not None and getattr(embeddings, "out_features", None):
        return int(embeddings.out_features)  # a packed output layer (model/packed_linear) has no weight
    return int(model.config.vocab_size)


@dataclass(frozen=True)
class Serving:
    """What a worker serves once its model is loaded; the compute type depends on the device."""

    service: GenerationService
    compute_type: str


def choose_engine(config: Config) -> str:
    """``SLUICE_ENGINE``: ``auto`` is vllm only where it pays (importable and a CUDA device)."""
    installed = importlib.util.find_spec("vllm") is not None
    if config.engine == "vllm" and not installed:
        raise ConfigError("SLUICE_ENGINE=vllm but vllm is not installed (make install-vllm)")
    if config.engine != "auto":
        return config.engine
    return "vllm" if installed and config.device != "cpu" and torch.cuda.is_available() else "sluice"


def make_service(config: Config, engine, validator: Validator,
                 grammars: GrammarCompiler | None = None) -> GenerationService:
    """The generation service over either engine: slots, cache, timeouts, metrics, grammars."""
    limits = RequestLimits(config.max_stop_sequences, config.max_top_n_tokens, config.max_best_of)
    return GenerationService(engine, validator, limits, config.max_concurrent_requests,
                             request_timeout=float(config.model_server_timeout),
                             cache=ResponseCache(config.response_cache_size), metrics=Metrics(),
                             keepalive_seconds=config.sse_keepalive_seconds, grammars=grammars,
                             model_name=config.served_model_name)


def build_serving(config: Config) -> Serving:
    if choose_engine(config) == "vllm":
        return build_vllm_serving(config)
    threads = configure_threads(config)
    loaded = load_model(config)
    limits = config.token_limits(loaded.max_position_embeddings)
    budget = scheduler_budget(config, loaded, limits.max_input_tokens, limits.max_total_tokens)
    tokenizer = loaded.tokenizer
    special_ids = frozenset(tokenizer.all_special_ids)
    runner = ModelRunner(loaded.model, loaded.device, tokenizer.pad_token_id, loaded.dtype_reason,
                         loaded.linear_kernels, fuse=config.fused_prefill)
    log.info("fused prefill: %s", runner.fused_pass)  # checked on the loaded model, before serving
    eos_ids = eos_token_ids(loaded)
    engine = Engine(runner, tokenizer, budget, eos_ids, special_ids,
                    PrefixCache(budget.max_batch_total_tokens // PREFIX_CACHE_SHARE)).start()
    validator = Validator(tokenizer, limits, config.default_max_new_tokens, check=engine.check_request)
    log.info("serving with %d torch threads, limits %s, budget %s", threads, limits, budget)
    service = make_service(config, engine, validator, grammar_compiler(config, tokenizer, logits_width(loaded.model), eos_ids))
    return Serving(service, config.compute_type or default_compute_type(loaded.device))


def build_vllm_serving(config: Config) -> Serving:
    """The same service on vLLM's engine; vLLM is imported here only."""
    from .engine.vllm_bootstrap import build_vllm_engine

    engine, tokenizer, limits, device = build_vllm_engine(config)
    validator = Validator(tokenizer, limits, config.default_max_new_tokens, check=engine.check_request)
    grammars = grammar_compiler(config, tokenizer, engine.vocab_size, engine.eos_token_ids)
    return Serving(make_service(config, engine, validator, grammars),
                   config.compute_type or default_compute_type(torch.device(device)))
