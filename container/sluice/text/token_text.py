"""Ids to text, the two ways every engine needs: a generated run without special tokens (what
the client reads) and one token as it is (what ``details`` and ``top_tokens`` show)."""

from __future__ import annotations


class TokenText:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)
