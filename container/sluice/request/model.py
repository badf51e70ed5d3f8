"""The typed request every dialect produces and every engine consumes.

No Flask, no torch, no body knowledge: TGI's ``parameters`` and OpenAI's top-level fields are
both read by their dialect into these types, so the engines and the serving layer see one model
whatever the client spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .adapter import AdapterRef, AdapterSelection
from .grammar import GrammarSpec
from .sagemaker import NO_HEADERS, SageMakerHeaders
from .session import SessionPin


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen for one sequence; ``do_sample=False`` means greedy."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    watermark: bool = False
    logit_bias: tuple[tuple[int, float], ...] = ()  # OpenAI's: (token id, bias added to its logit)

    @property
    def needs_processing(self) -> bool:
        """Whether logits need per-sequence work beyond argmax (biases, penalties or sampling)."""
        return self.do_sample or self.needs_history or bool(self.logit_bias)

    @property
    def needs_history(self) -> bool:
        """Whether choosing needs the tokens so far (penalties count them; the watermark's
        greenlist depends on the last one)."""
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.watermark


@dataclass(frozen=True)
class GenerateRequest:
    """One prompt and how to continue it; ``max_new_tokens=None`` means the server default."""

    inputs: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    truncate: int | None = None
    return_full_text: bool = False
    details: bool = False
    decoder_input_details: bool = False
    top_n_tokens: int = 0
    best_of: int = 1
    stream: bool = False
    grammar: GrammarSpec | None = None  # the output must match it
    # Whether the answer shows each token's log-probability: TGI's always do, OpenAI's only when
    # asked. An engine that pays per token for them (vLLM's) computes them only when needed.
    token_logprobs: bool = True
    adapter: AdapterSelection | None = None  # the LoRA adapter the body named (serving resolves it)


@dataclass(frozen=True)
class RequestLimits:
    """The server's bounds on what one request may ask for (TGI's launcher defaults)."""

    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_best_of: int = 2
    max_client_batch_size: int = 4  # prompts in one completions request (TGI's MAX_CLIENT_BATCH_SIZE)


@dataclass(frozen=True)
class FieldNames:
    """The names the client used for the request's fields, so a 422 names what it sent.

    TGI's bodies use the canonical names; OpenAI's say ``max_tokens`` for ``max_new_tokens``,
    ``top_logprobs`` for ``top_n_tokens`` and ``prompt``/``messages`` for ``inputs``.
    """

    renamed: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, canonical: str) -> str:
        return self.renamed.get(canonical, canonical)


TGI_NAMES = FieldNames()


@dataclass(frozen=True)
class ValidRequest:
    """A request that fits: its prompt token ids and the number of tokens it may generate."""

    request: GenerateRequest
    input_ids: tuple[int, ...]
    max_new_tokens: int
    grammar: object | None = None  # the compiled grammar (request thread), never compiled by an engine
    sagemaker: SageMakerHeaders = NO_HEADERS  # what the client asked through SageMaker's headers
    adapter: AdapterRef | None = None  # the LoRA adapter it runs with (None: the base model)
    session: SessionPin | None = None  # the stateful session it runs in (its KV stays cached)

    @property
    def input_length(self) -> int:
        return len(self.input_ids)
