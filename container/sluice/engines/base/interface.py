"""The engine interface serving drives: what any engine (the native one, vLLM's) must offer.

Serving never reaches into an engine's internals: it submits validated requests, cancels the
ones whose client went away, and reads health, stats and a description. Both engines satisfy
this protocol structurally; tests can drive serving with a fake that does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...config import TokenLimits
    from ...request import AdapterRef, AdapterSpec, GenerateRequest, ValidRequest
    from .sequence import Sequence, StepSink


@dataclass
class EngineStats:
    """Counters ``/metrics`` reads at scrape time and tests read (written by the engine thread)."""

    queue_size: int = 0
    batch_size: int = 0
    batch_tokens: int = 0
    finished_total: int = 0
    failed_total: int = 0
    prefix_cache_hits: int = 0
    prefix_cache_hit_tokens: int = 0
    prefix_cache_entries: int = 0
    prefix_cache_tokens: int = 0
    prefix_cache_bytes: int = 0
    prefix_cache_capacity_tokens: int = 0  # 0: no prefix cache of its own (vLLM's is in its KV cache)
    prefix_cache_pinned_tokens: int = 0  # of prefix_cache_tokens, what stateful sessions keep


class GenerationEngine(Protocol):
    def submit(self, valid: "ValidRequest", seed: int | None = None) -> "Sequence":
        """Queue one sequence; its tokens go to the sink, one ``publish`` per step."""

    def deliver_to(self, sink: "StepSink") -> None:
        """Where the steps go from now on (the serving's delivery thread; until then each
        sequence's own ``events`` queue)."""

    @property
    def steps_on_this_cpu(self) -> bool:
        """Whether a step is CPU work in this process (its threads would share the cores with a
        delivery thread running beside it: deliver between steps instead)."""

    def cancel(self, sequence: "Sequence") -> None:
        """Stop a sequence nobody reads any more; its batch row is freed within a step."""

    def release(self, sequence: "Sequence") -> None:
        """Stop a sequence whose text finished before the engine saw it end (a stop sequence)."""

    def healthy(self) -> bool:
        """Whether the engine's thread still runs (from cached state: no forward pass)."""

    def close(self, timeout: float) -> bool:
        """Stop the engine's thread before the process exits (waiting at most ``timeout``)."""

    @property
    def stats(self) -> EngineStats:
        """Queue and batch sizes, for ``/metrics``."""

    def describe(self) -> dict:
        """What ``/info`` shows: engine name, dtype, device, batch limits."""

    def check_request(self, request: "GenerateRequest") -> None:
        """Raise a 422 for a parameter this engine cannot honour (nothing is silently dropped)."""

    def add_adapter(self, spec: "AdapterSpec") -> dict:
        """Check a LoRA adapter's directory against the model and serve it from now on: what its
        files say (rank, target modules) and whether it is loaded; a 424 if it does not fit, a 409
        if this engine serves no adapters. Called from a request thread."""

    def remove_adapter(self, ref: "AdapterRef") -> None:
        """Stop serving an adapter; requests already running with it may finish."""

    def adapter_loaded(self, ref: "AdapterRef") -> bool:
        """Whether the adapter's weights are loaded now (``GET /adapters``)."""

    def end_session(self, session_id: str) -> None:
        """A stateful session closed: what the engine kept for it may go (called from any thread)."""


@dataclass(frozen=True)
class EngineBuild:
    """What an engine's ``build(config)`` hands the common wiring (``sluice.bootstrap``): the
    started engine and the facts the validator, the grammar compiler and the service need."""

    engine: GenerationEngine
    tokenizer: object
    limits: "TokenLimits"
    vocab_size: int  # the width of the logits, which grammar masks cover (often past the tokenizer's)
    eos_token_ids: frozenset[int]
    device_type: str  # "cuda" or "cpu": the default x-compute-type depends on it
