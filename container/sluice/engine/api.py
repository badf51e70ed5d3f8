"""The engine interface serving drives: what any engine (the embedded one, vLLM's) must offer.

Serving never reaches into an engine's internals: it submits validated requests, cancels the
ones whose client went away, and reads health, stats and a description. Both engines satisfy
this protocol structurally; tests can drive serving with a fake that does too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..request import GenerateRequest, ValidRequest
    from .sequence import Sequence


class EngineStats(Protocol):
    """The live gauges ``/metrics`` reads at scrape time."""

    queue_size: int
    batch_size: int
    batch_tokens: int


class GenerationEngine(Protocol):
    def submit(self, valid: "ValidRequest", seed: int | None = None) -> "Sequence":
        """Queue one sequence; its events arrive on ``sequence.events``."""

    def cancel(self, sequence: "Sequence") -> None:
        """Stop a sequence nobody reads any more; its batch row is freed within a step."""

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
