"""What a sequence emits, as plain data: tokens, the finish, a failure. Engines produce these
events and every dialect encodes them, so they live below both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    logprob: float | None
    special: bool


@dataclass(frozen=True)
class Finish:
    """What the last event carries: the full generated text and the details of the run."""

    generated_text: str
    finish_reason: str
    generated_tokens: int
    seed: int | None
    input_length: int
    prefill: tuple[Token, ...]
    queued_seconds: float
    inference_seconds: float


@dataclass(frozen=True)
class TokenEvent:
    index: int  # 1-based, as TGI's stream
    token: Token
    top_tokens: tuple[Token, ...]
    finish: Finish | None = None


@dataclass(frozen=True)
class ErrorEvent:
    error: Exception
