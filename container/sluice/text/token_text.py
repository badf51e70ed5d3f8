"""Ids to text, the ways every engine needs: a generated run without special tokens (what the
client reads), one token as it is (what ``details`` and ``top_tokens`` show), and the incremental
detokenizer of a new sequence."""

from __future__ import annotations

from .detokenizer import detokenizer_for


class TokenText:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._tokens: dict[int, str] = {}

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token(self, token_id: int) -> str:
        """One token's own text, special tokens included (remembered: top tokens repeat)."""
        text = self._tokens.get(token_id)
        if text is None:
            text = self._tokens[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

    def detokenizer(self, context_ids):
        """A new sequence's incremental detokenizer, ``context_ids`` its prompt."""
        return detokenizer_for(self.tokenizer, context_ids)
