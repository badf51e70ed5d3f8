"""One sequence's text as its tokens arrive: the detokenizer, the stop rules, the events.

Engines only choose tokens; the text each token adds, the finish reason and the ``TokenEvent``
the protocols encode are made here, once per token, by whoever delivers the engine's steps
(``serving.delivery``), so every engine's answer has the same text and the same details.
``add`` runs TGI's ``Sequence.add``: a special token shows as itself, anything else goes through
the incremental detokenizer; the stopping criteria see the text as the client will; the last
event carries the whole text (everything emitted plus what the detokenizer held back) and the
details of the run.
"""

from __future__ import annotations

import time
from typing import Callable

from .events import Finish, Token, TokenEvent
from .stopping import StoppingCriteria


class SequenceText:
    __slots__ = ("detokenizer", "stopping", "special_ids", "token_text", "count", "finished", "closed")

    def __init__(self, detokenizer, stopping: StoppingCriteria, special_ids: frozenset[int],
                 token_text: Callable[[int], str]):
        self.detokenizer = detokenizer
        self.stopping = stopping
        self.special_ids = special_ids
        self.token_text = token_text  # id -> the token's own text (special and top tokens)
        self.count = 0  # tokens added so far (the engine may already be further on)
        self.finished = False  # its last event is made
        self.closed = False  # its delivery is over, whatever the reason (serving.delivery's)

    def add(self, sequence, choice, now: float | None = None) -> TokenEvent:
        """The event of one more chosen token of ``sequence``; the last one carries the finish."""
        token_id = choice.token_id
        self.count += 1
        special = token_id in self.special_ids
        text = self.token_text(token_id) if special else self.detokenizer.push(token_id)
        reason = self.stopping(token_id, "" if special else text)
        finish = None
        if reason is not None:
            rest = self.detokenizer.finish()
            if not special:
                text += rest
            self.finished = True
            now = time.monotonic() if now is None else now
            started = sequence.started_at or now
            valid = sequence.valid
            finish = Finish(
                generated_text=self.detokenizer.emitted, finish_reason=reason, generated_tokens=self.count,
                seed=sequence.seed if valid.request.sampling.do_sample else None, input_length=valid.input_length,
                prefill=sequence.prefill, queued_seconds=started - sequence.queued_at,
                inference_seconds=now - started)
        tops = ()
        if choice.top_tokens:
            tops = tuple(Token(i, self.token_text(i), lp, i in self.special_ids) for i, lp in choice.top_tokens)
        return TokenEvent(self.count, Token(token_id, text, choice.logprob, special), tops, finish)
