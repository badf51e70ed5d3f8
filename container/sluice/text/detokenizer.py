"""Incremental detokenization: the text each new token adds, always valid UTF-8.

TGI's ``decode_token`` scheme: decode a small window of ids twice (up to the last emitted token,
and including the new one) and emit the difference. A byte-level token can end inside a
multi-byte character, which decodes to U+FFFD, so such text is held back until the character
completes. The concatenation of everything emitted, plus ``finish()``, equals the full decode,
which is what makes streamed text equal non-streamed text byte for byte.
"""

from __future__ import annotations

REPLACEMENT_CHAR = "\ufffd"
# How many earlier tokens give the decoder context (leading-space rules of some tokenizers).
CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    def __init__(self, decode, context_ids: list[int] | tuple[int, ...] = ()):
        """``decode(ids) -> str`` must skip special tokens; ``context_ids`` are the prompt's tail."""
        self._decode = decode
        self._ids: list[int] = list(context_ids[-CONTEXT_TOKENS:])
        self._first_generated = len(self._ids)
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self.emitted = ""

    def push(self, token_id: int) -> str:
        """Add one generated (non-special) token; return the text it completes, maybe ``""``."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT_CHAR):
            delta = new_text[len(prefix_text):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            self.emitted += delta
            return delta
        return ""

    def finish(self) -> str:
        """The held-back rest (e.g. an unfinished character at the very end); call once."""
        full = self._decode(self._ids[self._first_generated:])
        rest = full[len(self.emitted):] if full.startswith(self.emitted) else ""
        self.emitted += rest
        return rest
