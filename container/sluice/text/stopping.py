"""When a sequence stops, and why: TGI's three finish reasons as one small callable."""

from __future__ import annotations

LENGTH = "length"
EOS_TOKEN = "eos_token"
STOP_SEQUENCE = "stop_sequence"


class StoppingCriteria:
    def __init__(self, eos_token_ids: frozenset[int], stop_sequences: tuple[str, ...], max_new_tokens: int):
        self.eos_token_ids = eos_token_ids
        self.stop_sequences = stop_sequences
        self.max_new_tokens = max_new_tokens
        self.generated = 0
        # Only the tail of the text can complete a stop sequence that spans several tokens.
        self._tail = ""
        self._tail_keep = max((len(s) for s in stop_sequences), default=1) - 1

    def __call__(self, token_id: int, new_text: str) -> str | None:
        """Account for one generated token and its text; return a finish reason or None."""
        self.generated += 1
        if token_id in self.eos_token_ids:
            return EOS_TOKEN
        if self.stop_sequences and new_text:
            window = self._tail + new_text
            if any(stop in window for stop in self.stop_sequences):
                return STOP_SEQUENCE
            self._tail = window[-self._tail_keep:] if self._tail_keep else ""
        if self.generated >= self.max_new_tokens:
            return LENGTH
        return None
