"""One request's life inside an engine, where its tokens go, and the one way an engine makes it.

An engine hands each step's chosen tokens to a ``StepSink`` in one call (``publish``): the
serving's delivery thread (``serving.delivery``), or, for an engine used on its own,
``QueueSink``, which puts each sequence's events on its ``events`` queue at once. The engine
thread is the only writer of a ``Sequence``'s engine state (its ids, ``finished``); its ``text``
(detokenizer, stop rules, the events: ``text.sequence_text``) belongs to whoever receives the
steps. Request threads and the delivery only ``cancel()`` a sequence (its client went away) or
``release()`` it (its text finished first: a stop sequence); the engine drops it at its next
step. Every engine makes its sequences with a ``SequenceMaker``, so the seed a sampled request
reports, the text and the stop rules are the same whichever engine chose the tokens.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ...request import SamplingParams, ValidRequest
from ...text.events import ErrorEvent, Token
from ...text.sequence_text import SequenceText
from ...text.stopping import STOP_SEQUENCE, StoppingCriteria
from ...text.token_text import TokenText


@dataclass(frozen=True)
class Choice:
    """One chosen token as an engine reports it: its log-probability (None where the engine was
    not asked for it: nothing shows it) and the most likely tokens."""

    token_id: int
    logprob: float | None
    top_tokens: tuple[tuple[int, float], ...] = ()


class StepSink(Protocol):
    """Where an engine hands its steps: every running sequence's new tokens in one call."""

    def publish(self, step: list[tuple["Sequence", list[Choice]]]) -> None: ...

    def fail(self, sequences: list["Sequence"], error: Exception) -> None: ...


@dataclass
class Sequence:
    valid: ValidRequest
    seed: int | None  # what a sampled request draws with (``details`` report it); see draw_seed
    text: SequenceText  # the sink's, never the engine's
    sink: StepSink
    id: int = 0
    events: queue.Queue = field(default_factory=queue.Queue)  # ``QueueSink``'s
    generated_ids: list[int] = field(default_factory=list)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished: bool = False  # the engine is done with it: EOS, its token budget, or a failure
    prefill: tuple[Token, ...] = ()
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _released: bool = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def stopped(self) -> bool:
        """Cancelled or released: the engine steps it no more."""
        return self._released or self._cancelled.is_set()

    def cancel(self) -> None:
        """Its client has gone away (or its time ran out)."""
        self._cancelled.set()

    def release(self) -> None:
        """Its text finished before the engine saw it end (a stop sequence)."""
        self._released = True

    @property
    def history(self) -> list[int]:
        return list(self.valid.input_ids) + self.generated_ids

    def take(self, choice: Choice) -> bool:
        """The engine's bookkeeping of one chosen token; True once the engine is done with the
        sequence: EOS or ``max_new_tokens``, the rules its text's stopping applies too."""
        self.generated_ids.append(choice.token_id)
        if choice.token_id in self.text.stopping.eos_token_ids or len(self.generated_ids) >= self.valid.max_new_tokens:
            self.finished = True
        return self.finished

    def fail(self, error: Exception) -> None:
        self.finished = True
        self.sink.fail([self], error)


class QueueSink:
    """An engine on its own (tests, in-process benchmarks): each step's text made at once, in
    the engine's thread, every event put on its sequence's ``events`` queue."""

    def publish(self, step: list[tuple[Sequence, list[Choice]]]) -> None:
        for sequence, choices in step:
            text = sequence.text
            for choice in choices:
                if text.finished:
                    break
                event = text.add(sequence, choice)
                sequence.events.put(event)
                if event.finish is not None and event.finish.finish_reason == STOP_SEQUENCE:
                    sequence.release()

    def fail(self, sequences: list[Sequence], error: Exception) -> None:
        for sequence in sequences:
            if not sequence.text.finished:
                sequence.text.finished = True
                sequence.events.put(ErrorEvent(error))


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
    special ids, where its steps go, and the next sequence id. ``new`` is the only way engines
    make a sequence."""

    def __init__(self, tokenizer, eos_token_ids: frozenset[int], special_ids: frozenset[int],
                 sink: StepSink | None = None):
        self.text = TokenText(tokenizer)
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self.sink: StepSink = sink or QueueSink()
        self._ids = itertools.count(1)

    def new(self, valid: ValidRequest, seed: int | None = None, kind: type[S] = Sequence, **engine_state) -> S:
        """A sequence of ``kind`` for ``valid``, its seed drawn; ``engine_state`` fills the fields
        a subclass adds (the native engine's sampler and grammar state)."""
        text = SequenceText(self.text.detokenizer(valid.input_ids),
                            StoppingCriteria(self.eos_token_ids, valid.request.stop, valid.max_new_tokens),
                            self.special_ids, self.text.token)
        return kind(valid=valid, seed=draw_seed(valid.request.sampling, seed), text=text, sink=self.sink,
                    id=next(self._ids), **engine_state)
