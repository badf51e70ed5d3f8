"""One request's life inside an engine, the events its handler reads, and the one way an engine
makes it.

The engine thread is the only writer of a ``Sequence``; the request thread only reads its
``events`` queue and may call ``cancel()``. Events carry plain data, never tensors. Every engine
makes its sequences with a ``SequenceMaker``, so the seed a sampled request reports, the text
and the stop rules are the same whichever engine chose the tokens.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from ...request import SamplingParams, ValidRequest
from ...text.detokenizer import IncrementalDetokenizer
from ...text.events import ErrorEvent, Finish, Token, TokenEvent
from ...text.stopping import StoppingCriteria
from ...text.token_text import TokenText


@dataclass(frozen=True)
class Choice:
    """One chosen token as an engine reports it: its log-probability and the most likely tokens."""

    token_id: int
    logprob: float
    top_tokens: tuple[tuple[int, float], ...] = ()


@dataclass
class Sequence:
    valid: ValidRequest
    seed: int | None  # what a sampled request draws with (``details`` report it); see draw_seed
    detokenizer: IncrementalDetokenizer
    stopping: StoppingCriteria
    special_ids: frozenset[int]
    token_text: Callable[[int], str]  # id -> the token's own text (for special tokens)
    id: int = 0
    events: queue.Queue = field(default_factory=queue.Queue)
    generated_ids: list[int] = field(default_factory=list)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished: bool = False
    prefill: tuple[Token, ...] = ()
    _cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Called from the request thread when its client has gone away."""
        self._cancelled.set()

    @property
    def history(self) -> list[int]:
        return list(self.valid.input_ids) + self.generated_ids

    def add(self, choice: Choice) -> None:
        """Account for one chosen token and publish it; marks the sequence finished when done."""
        now = time.monotonic()
        token_id = choice.token_id
        self.generated_ids.append(token_id)
        special = token_id in self.special_ids
        text = self.token_text(token_id) if special else self.detokenizer.push(token_id)
        reason = self.stopping(token_id, "" if special else text)
        finish = None
        if reason is not None:
            rest = self.detokenizer.finish()
            if not special:
                text += rest
            self.finished = True
            sampled = self.valid.request.sampling.do_sample
            finish = Finish(
                generated_text=self.detokenizer.emitted, finish_reason=reason,
                generated_tokens=len(self.generated_ids), seed=self.seed if sampled else None,
                input_length=self.valid.input_length, prefill=self.prefill,
                queued_seconds=(self.started_at or now) - self.queued_at,
                inference_seconds=now - (self.started_at or now))
        token = Token(token_id, text, choice.logprob, special)
        tops = tuple(Token(i, self.token_text(i), lp, i in self.special_ids) for i, lp in choice.top_tokens)
        self.events.put(TokenEvent(len(self.generated_ids), token, tops, finish))

    def fail(self, error: Exception) -> None:
        self.finished = True
        self.events.put(ErrorEvent(error))


def draw_seed(sampling: SamplingParams, seed: int | None = None) -> int | None:
    """The seed a request samples with: the caller's, else the request's, else a random one (the
    answer's ``details`` report it, so a sampled answer can be asked for again). Greedy requests
    draw nothing."""
    if sampling.do_sample and seed is None:
        return sampling.seed if sampling.seed is not None else random.getrandbits(63)
    return seed


S = TypeVar("S", bound=Sequence)


class SequenceMaker:
    """What an engine knows that every new sequence needs: its tokenizer's text, its EOS ids and
    special ids, and the next sequence id. ``new`` is the only way engines make a sequence."""

    def __init__(self, tokenizer, eos_token_ids: frozenset[int], special_ids: frozenset[int]):
        self.text = TokenText(tokenizer)
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self._ids = itertools.count(1)

    def new(self, valid: ValidRequest, seed: int | None = None, kind: type[S] = Sequence, **engine_state) -> S:
        """A sequence of ``kind`` for ``valid``, its seed drawn; ``engine_state`` fills the fields
        a subclass adds (the native engine's sampler and grammar state)."""
        return kind(valid=valid, seed=draw_seed(valid.request.sampling, seed),
                    detokenizer=IncrementalDetokenizer(self.text.decode, valid.input_ids),
                    stopping=StoppingCriteria(self.eos_token_ids, valid.request.stop, valid.max_new_tokens),
                    special_ids=self.special_ids, token_text=self.text.token, id=next(self._ids), **engine_state)
