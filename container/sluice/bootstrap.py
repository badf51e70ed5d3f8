"""Wiring: config -> the chosen engine (``engines.registry``) -> validator, grammars -> the
generation service. What every engine shares is built here once; what is an engine's own
(model loading, its batch budget, its arguments) is in that engine's ``build``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .config import Config
from .engines.base import GenerationEngine
from .engines.registry import build_engine
from .request import RequestLimits
from .serving.adapters import AdapterRegistry
from .serving.grammar import GrammarCompiler, GrammarLimits
from .serving.metrics import Metrics
from .serving.response_cache import ResponseCache
from .serving.service import GenerationService
from .serving.session_store import DirectorySessionStore, private_directory
from .serving.sessions import Sessions
from .serving.validation import Validator

log = logging.getLogger("sluice.bootstrap")


def grammar_compiler(config: Config, tokenizer, vocab_size: int, eos_ids: frozenset[int]) -> GrammarCompiler | None:
    """llguidance's view of the tokenizer, for grammars; None (grammar is a 422) when disabled
    or when the tokenizer is not a fast one (llguidance reads the Rust tokenizer's JSON). Every
    engine validates and bounds grammars with it, so an invalid grammar is the same 422 on all."""
    if config.disable_grammar_support:
        return None
    limits = GrammarLimits(max_source_bytes=config.grammar_max_bytes,
                           compile_seconds=float(config.grammar_compile_timeout))
    try:
        return GrammarCompiler.for_tokenizer(tokenizer, vocab_size, eos_ids, limits)
    except Exception:
        log.exception("grammar support is off: llguidance cannot read this tokenizer")
        return None


def default_compute_type(device_type: str) -> str:
    """``x-compute-type`` when COMPUTE_TYPE is unset: TGI's GPU DLC value on CUDA, else ``cpu``."""
    return "gpu+optimized" if device_type == "cuda" else "cpu"


@dataclass(frozen=True)
class Serving:
    """What a worker serves once its model is loaded; the compute type depends on the device."""

    service: GenerationService
    compute_type: str


def make_sessions(config: Config, engine: GenerationEngine) -> Sessions:
    """Stateful sessions over the store every worker shares (``SAGEMAKER_SESSIONS_PATH``, which
    the gunicorn master sets; a process serving alone makes its own), or off."""
    if not config.stateful_sessions:
        return Sessions(None)
    store = DirectorySessionStore(config.sessions_path or private_directory())
    log.info("stateful sessions on: %d s each, kept in %s", config.session_ttl_seconds, store.root)
    return Sessions(store, float(config.session_ttl_seconds), release=engine.end_session)


def make_service(config: Config, engine: GenerationEngine, validator: Validator,
                 grammars: GrammarCompiler | None = None) -> GenerationService:
    """The generation service over any engine: slots, cache, timeouts, metrics, grammars, sessions,
    adapters."""
    limits = RequestLimits(config.max_stop_sequences, config.max_top_n_tokens, config.max_best_of)
    return GenerationService(engine, validator, limits, config.max_concurrent_requests,
                             request_timeout=float(config.model_server_timeout),
                             cache=ResponseCache(config.response_cache_size), metrics=Metrics(),
                             keepalive_seconds=config.sse_keepalive_seconds, grammars=grammars,
                             model_name=config.served_model_name, sessions=make_sessions(config, engine),
                             adapters=AdapterRegistry(engine, (config.served_model_name, config.model_id),
                                                      workers=config.workers))


def register_startup_adapters(service: GenerationService, config: Config) -> None:
    """TGI's ``LORA_ADAPTERS``, registered (and loaded, as far as slots allow) before the server
    says it is ready; one that cannot be served stops the start with its 424 text."""
    for name, path in config.lora_adapters:
        record = service.adapters.register(name, path, at_start=True)
        log.info("LORA_ADAPTERS: %s from %s, rank %s", name, path, record.facts.get("rank"))


def build_serving(config: Config) -> Serving:
    """The chosen engine, started on the model, behind the one generation service."""
    built = build_engine(config)
    validator = Validator(built.tokenizer, built.limits, config.default_max_new_tokens,
                          check=built.engine.check_request)
    grammars = grammar_compiler(config, built.tokenizer, built.vocab_size, built.eos_token_ids)
    service = make_service(config, built.engine, validator, grammars)
    register_startup_adapters(service, config)
    return Serving(service, config.compute_type or default_compute_type(built.device_type))
