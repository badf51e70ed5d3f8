"""Token-level validation: tokenize, truncate and check lengths with TGI's exact messages.

Runs in the request thread, before anything reaches the engine, so a bad request costs no
forward pass and the engine only ever sees requests that fit.
"""

from __future__ import annotations

import logging
from typing import Callable

from ..config import TokenLimits
from ..errors import ValidationError
from ..request import TGI_NAMES, FieldNames, GenerateRequest, ValidRequest
from ..text.prompt_encoder import prompt_encoder
from .session_store import Transcript
from .transcripts import continue_transcript

log = logging.getLogger("sluice.validation")


class Validator:
    def __init__(self, tokenizer, limits: TokenLimits, default_max_new_tokens: int,
                 check: Callable[[GenerateRequest], None] | None = None):
        """``check`` is the engine's capability check: it raises a 422 for a parameter the
        engine cannot honour, so nothing is silently dropped (every route validates here)."""
        self.tokenizer = tokenizer
        self._encode = prompt_encoder(tokenizer)
        self.limits = limits
        self.default_max_new_tokens = default_max_new_tokens
        self.check = check

    def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The prompt's token ids; a tokenizer failure is the client's 422 with a stable text,
        its message (library internals such as ``TextEncodeInput must be Union[...]``) is logged."""
        try:
            return self._encode(text, add_special_tokens)
        except Exception:
            log.exception("tokenizer failed")
            raise ValidationError("tokenizer error: the input could not be tokenized") from None

    def validate(self, request: GenerateRequest, names: FieldNames = TGI_NAMES,
                 add_special_tokens: bool = True, transcript: Transcript | None = None) -> ValidRequest:
        """Tokenise, truncate and check the lengths; the 422s name the client's fields.
        ``add_special_tokens=False`` for a rendered chat template, which holds BOS already.
        In a session, a prompt that continues the session's ``transcript`` keeps its ids."""
        if self.check is not None:
            self.check(request)
        self._check_logit_bias(request)
        limits = self.limits
        truncate = request.truncate
        if truncate is not None and (truncate == 0 or truncate > limits.max_input_tokens):
            raise ValidationError(f"`{names('truncate')}` must be strictly positive and less than "
                                  f"{limits.max_input_tokens}. Given: {truncate}")
        input_ids = self.tokenize(request.inputs, add_special_tokens)
        if transcript is not None and truncate is None:
            input_ids = continue_transcript(self.tokenizer, request.inputs, add_special_tokens, input_ids, transcript)
        if truncate is not None:
            input_ids = input_ids[-truncate:]  # keep the end of the prompt, as TGI does
        max_new = self._max_new_tokens(request, len(input_ids), names)
        return ValidRequest(request=request, input_ids=tuple(input_ids), max_new_tokens=max_new)

    def _check_logit_bias(self, request: GenerateRequest) -> None:
        """A biased id must be one of the tokenizer's: past it the logits (if any) are padding."""
        size = len(self.tokenizer) if hasattr(self.tokenizer, "__len__") else None
        for token, _ in request.sampling.logit_bias:
            if size is not None and token >= size:
                raise ValidationError(f"`logit_bias` token {token} is not in the vocabulary (0..{size - 1})")

    def _max_new_tokens(self, request: GenerateRequest, input_len: int, names: FieldNames) -> int:
        """The tokens this request may generate, after TGI's length checks in TGI's order."""
        limits = self.limits
        inputs, max_new_name = names("inputs"), names("max_new_tokens")
        if input_len == 0:
            raise ValidationError(f"`{inputs}` cannot be empty")
        max_new = request.max_new_tokens
        if max_new is None:
            max_new = max(1, min(self.default_max_new_tokens, limits.max_total_tokens - input_len))
        if input_len + max_new > limits.max_total_tokens:
            raise ValidationError(
                f"`{inputs}` tokens + `{max_new_name}` must be <= {limits.max_total_tokens}. "
                f"Given: {input_len} `{inputs}` tokens and {max_new} `{max_new_name}`")
        if input_len > limits.max_input_tokens:
            raise ValidationError(f"`{inputs}` must have less than {limits.max_input_tokens} tokens. "
                                  f"Given: {input_len}")
        return max_new
