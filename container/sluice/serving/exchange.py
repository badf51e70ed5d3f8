"""What the response driver needs from a dialect: the seam between the protocols and serving.

A ``Dialect`` (TGI generate/compat, OpenAI chat, OpenAI completions) turns a body into an
``Exchange``: the typed requests, plus how this one answer is written (each event, the error
event, the final body, the closing payloads). The driver owns everything in between, so every
dialect gets the same admission, validation, cache, metrics, keep-alives and cancellation.
Serving defines these interfaces; the protocols' dialects implement them (``protocols`` sits above
serving).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

from ..errors import ServerError
from ..request import NO_HEADERS, TGI_NAMES, FieldNames, GenerateRequest, SageMakerHeaders
from ..text.events import TokenEvent
from .session_store import Session

Run = list[TokenEvent]


@dataclass(frozen=True)
class Outcome:
    """One prompt's answer: its runs (best first, ``best_of`` > 1 gives several) and whether
    they came from the response cache."""

    runs: list[Run]
    cached: bool


@dataclass(frozen=True)
class Prompt:
    """One typed request and, for a prompt a dialect tokenised itself, how to tokenise it."""

    request: GenerateRequest
    add_special_tokens: bool = True  # a rendered chat template already holds BOS


class Exchange(Protocol):
    """One parsed request of a dialect, and how its answer is encoded."""

    stream: bool
    prompts: list[Prompt]
    names: FieldNames  # the client's field names, for the token-count 422s

    def encode_event(self, event: TokenEvent) -> Iterable[dict]: ...

    def encode_tail(self) -> Iterable[dict]: ...

    def encode_final(self, outcomes: list[Outcome], seconds: float) -> tuple[object, dict]: ...


class Dialect(Protocol):
    """A wire protocol: body -> ``Exchange``; and its error event, which a refused stream needs
    before any exchange exists."""

    closes_with_done: bool  # chat/completions SSE streams end with ``data: [DONE]``

    def parse(self, body, context: "ParseContext") -> Exchange: ...

    def wants_stream(self, body) -> bool: ...

    def encode_error(self, error: ServerError) -> dict: ...


@dataclass(frozen=True)
class ParseContext:
    """What a dialect may read while parsing: the limits, the tokenizer (chat templates), the
    served model's name and the compute type TGI's ``x-compute-type`` header names."""

    limits: object
    tokenizer: object
    model_name: str
    compute_type: str


@dataclass(frozen=True)
class HttpContext:
    """What the driver needs from the HTTP request, without knowing Flask: the stream format
    asked for, SageMaker's headers (carried on to the service and the engine), the stateful
    session the request runs in, the client's connection (watched for its closing) and, under
    gunicorn, the writer of a streamed body."""

    accept: str | None = None
    sagemaker: SageMakerHeaders = NO_HEADERS
    session: Session | None = None
    client_socket: object = None  # None: not known (the client's leaving is then not noticed)
    raw_body: object = None  # ``http.raw_body.RawBody``, or None where the WSGI server writes


@dataclass
class Reply:
    """An answer for the HTTP layer: a JSON payload, or a stream of byte chunks."""

    status: int = 200
    payload: object = None
    chunks: Iterable[bytes] | None = None
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


__all__ = ["Dialect", "Exchange", "HttpContext", "Outcome", "ParseContext", "Prompt", "Reply", "Run", "TGI_NAMES"]
