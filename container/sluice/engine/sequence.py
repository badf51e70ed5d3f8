"""One request's life inside the engine, and the events its handler reads.

The engine thread is the only writer of a ``Sequence``; the request thread only reads its
``events`` queue and may call ``cancel()``. Events carry plain data, never tensors.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..text.detokenizer import IncrementalDetokenizer
from ..text.stopping import StoppingCriteria
from ..request import ValidRequest
from ..text.events import ErrorEvent, Finish, Token, TokenEvent

if TYPE_CHECKING:  # torch stays out of the request threads' imports
    from .constraint import RowConstraint
    from .sampling import Choice, SequenceSampler


@dataclass
class Sequence:
    valid: ValidRequest
    sampler: "SequenceSampler"
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
    constraint: "RowConstraint | None" = None  # the grammar's state, for a constrained request
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

    def add(self, choice: "Choice") -> None:
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
            finish = Finish(
                generated_text=self.detokenizer.emitted, finish_reason=reason,
                generated_tokens=len(self.generated_ids), seed=self.sampler.seed if self.sampler.params.do_sample else None,
                input_length=self.valid.input_length, prefill=self.prefill,
                queued_seconds=(self.started_at or now) - self.queued_at,
                inference_seconds=now - (self.started_at or now))
        token = Token(token_id, text, choice.logprob, special)
        tops = tuple(Token(i, self.token_text(i), lp, i in self.special_ids) for i, lp in choice.top_tokens)
        self.events.put(TokenEvent(len(self.generated_ids), token, tops, finish))

    def fail(self, error: Exception) -> None:
        self.finished = True
        self.events.put(ErrorEvent(error))
