"""A prompt's token ids straight from the Rust tokenizer, where that gives what transformers gives.

``tokenizer(text)["input_ids"]`` on a fast tokenizer goes through transformers' Python wrapper:
argument checks, the backend's truncation and padding set again, ``encode_batch`` of a batch of
one (handed to the ``tokenizers`` thread pool), then a ``BatchEncoding`` built and unbatched. In a
burst that wrapper was most of a request's validation: 0.17–0.24 ms of the worker's CPU per
request through it, 0.09–0.12 ms with ``encode`` (256 short prompts at once, vLLM engine), and a
burst waits for its admission.

``Tokenizer.encode`` is the same pipeline the wrapper runs (normalizer, pre-tokenizer, model,
post-processor with or without special tokens), so it is used only where nothing in the wrapper
could change the ids: transformers' own ``_encode_plus`` and ``__call__`` (no subclass
overrides either), no truncation or padding set on the backend, and special tokens in the text
handled as the wrapper would. Anything else (a slow tokenizer, a test double, a subclass) keeps
the wrapper.
"""

from __future__ import annotations

from typing import Callable

Encoder = Callable[[str, bool], list[int]]


def prompt_encoder(tokenizer) -> Encoder:
    """``encode(text, add_special_tokens)``: the ids ``tokenizer(text, add_special_tokens=...)``
    gives, by the shortest path that gives the same ones."""
    def wrapped(text: str, add_special_tokens: bool) -> list[int]:
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    backend = _rust_backend(tokenizer)
    if backend is None:
        return wrapped

    def encode(text: str, add_special_tokens: bool) -> list[int]:
        if backend.truncation is not None or backend.padding is not None:  # set since, by a library call
            return wrapped(text, add_special_tokens)
        return backend.encode(text, add_special_tokens=add_special_tokens).ids

    return encode


def _rust_backend(tokenizer):
    """The ``tokenizers.Tokenizer`` behind a transformers fast tokenizer whose calls reach it
    unchanged; None otherwise."""
    try:
        from tokenizers import Tokenizer
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
    except ImportError:
        return None
    backend = getattr(tokenizer, "_tokenizer", None)
    if not isinstance(backend, Tokenizer) or not isinstance(tokenizer, PreTrainedTokenizerBase):
        return None
    wrapper = _fast_base()
    if wrapper is None or not isinstance(tokenizer, wrapper):
        return None
    cls = type(tokenizer)
    if cls._encode_plus is not wrapper._encode_plus or cls.__call__ is not PreTrainedTokenizerBase.__call__:
        return None
    if bool(getattr(tokenizer, "split_special_tokens", False)) != bool(backend.encode_special_tokens):
        return None
    return backend


def _fast_base():
    """transformers' fast-tokenizer class (``TokenizersBackend`` in v5, ``PreTrainedTokenizerFast`` before)."""
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
        return TokenizersBackend
    except ImportError:
        try:
            from transformers import PreTrainedTokenizerFast
            return PreTrainedTokenizerFast
        except ImportError:
            return None
