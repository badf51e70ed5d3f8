"""Incremental detokenization: the text each new token adds, always valid UTF-8.

TGI's ``decode_token`` scheme: decode a small window of ids twice (up to the last emitted token,
and including the new one) and emit the difference. A byte-level token can end inside a
multi-byte character, which decodes to U+FFFD, so such text is held back until the character
completes. The concatenation of everything emitted, plus ``finish()``, equals the full decode,
which is what makes streamed text equal non-streamed text byte for byte.

Two implementations of that one scheme: ``IncrementalDetokenizer`` runs it in Python over any
``decode`` function (the reference, and the path for tokenizers without a Rust backend or with
transformers' space clean-up on), and ``RustDetokenizer`` runs it in the ``tokenizers`` library's
``DecodeStream`` (about 1 µs a token instead of two Python-wrapped decodes). ``detokenizer_for``
picks one per tokenizer.
"""

from __future__ import annotations

from typing import Callable

REPLACEMENT_CHAR = "\ufffd"
# How many earlier tokens give the decoder context (leading-space rules of some tokenizers).
CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    def __init__(self, decode: Callable[[list[int]], str], context_ids: list[int] | tuple[int, ...] = ()):
        """``decode(ids) -> str`` must skip special tokens; ``context_ids`` are the prompt's tail."""
        self._decode = decode
        self._ids: list[int] = list(context_ids[-CONTEXT_TOKENS:])
        self._first_generated = len(self._ids)
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._parts: list[str] = []

    @property
    def emitted(self) -> str:
        """Everything returned so far (joined on demand: appending stays linear)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def push(self, token_id: int) -> str:
        """Add one generated (non-special) token; return the text it completes, maybe ``""``."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset:])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT_CHAR):
            delta = new_text[len(prefix_text):]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            self._parts.append(delta)
            return delta
        return ""

    def finish(self) -> str:
        """The held-back rest (e.g. an unfinished character at the very end); call once."""
        return _reconcile(self, self._decode(self._ids[self._first_generated:]))

    @property
    def generated_ids(self) -> list[int]:
        return self._ids[self._first_generated:]


def _reconcile(detokenizer, full: str) -> str:
    emitted = detokenizer.emitted
    rest = full[len(emitted):] if full.startswith(emitted) else ""
    detokenizer._parts.append(rest)
    return rest


class RustDetokenizer:
    """The same scheme in ``tokenizers.decoders.DecodeStream``; byte for byte the reference's.

    ``DecodeStream`` refuses a step whose decoded window no longer starts with the text it
    emitted before (a decoder that rewrites earlier text); the reference then emits the
    difference anyway. On that refusal the sequence continues on the reference, replayed over
    the ids so far (which reproduces every earlier delta), so the two never part.
    """

    def __init__(self, backend, context_ids: list[int] | tuple[int, ...] = ()):
        from tokenizers.decoders import DecodeStream

        self._backend = backend
        self._context = list(context_ids[-CONTEXT_TOKENS:])
        self._stream = DecodeStream(ids=self._context, skip_special_tokens=True)
        self._generated: list[int] = []
        self._parts: list[str] = []
        self._fallback: IncrementalDetokenizer | None = None

    @property
    def emitted(self) -> str:
        if self._fallback is not None:
            return self._fallback.emitted
        return IncrementalDetokenizer.emitted.fget(self)

    def _decode(self, ids: list[int]) -> str:
        return self._backend.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        if self._fallback is not None:
            return self._fallback.push(token_id)
        self._generated.append(token_id)
        try:
            text = self._stream.step(self._backend, token_id)
        except Exception:  # DecodeStream's "invalid prefix": continue on the reference
            return self._continue_on_reference()
        if text:
            self._parts.append(text)
            return text
        return ""

    def _continue_on_reference(self) -> str:
        reference = IncrementalDetokenizer(self._decode, self._context)
        delta = ""
        for token_id in self._generated:
            delta = reference.push(token_id)
        self._fallback = reference
        return delta

    def finish(self) -> str:
        if self._fallback is not None:
            return self._fallback.finish()
        return _reconcile(self, self._decode(self._generated))


def rust_backend(tokenizer):
    """The ``tokenizers.Tokenizer`` under a transformers tokenizer whose ``decode`` is exactly that
    backend's (no Python-side space clean-up); None where the reference must be used."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None or not hasattr(backend, "decode"):
        return None
    if getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return None
    return backend


def detokenizer_for(tokenizer, context_ids) :
    """The fastest detokenizer that gives ``tokenizer``'s reference text byte for byte."""
    backend = rust_backend(tokenizer)
    if backend is None:
        return IncrementalDetokenizer(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), context_ids)
    context = list(context_ids[-CONTEXT_TOKENS:])
    if backend.decode(context, skip_special_tokens=True).endswith(REPLACEMENT_CHAR):
        # The prompt ends inside a character: DecodeStream would emit its whole window at once.
        return IncrementalDetokenizer(lambda ids: backend.decode(ids, skip_special_tokens=True), context)
    return RustDetokenizer(backend, context)
