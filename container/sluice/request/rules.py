"""The request's rules: raw parameter values -> a ``GenerateRequest``, with TGI's defaults and
its exact 422 texts (``Input validation error: ...``), naming the fields the client sent.

Every dialect reads its body into ``Parameters`` (the values as given, ``None`` = not set) and
calls ``build_request``; the defaults and the checks live here only. Token-count checks need the
tokenizer and live in serving's ``validation``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError
from .adapter import AdapterSelection
from .grammar import GrammarSpec
from .model import TGI_NAMES, FieldNames, GenerateRequest, RequestLimits, SamplingParams

# OpenAI's bounds on a logit_bias value (-100 bans a token, 100 forces it).
LOGIT_BIAS_LIMIT = 100.0

# Sampling runs in float32: a parameter below float32's smallest normal value (1.18e-38) becomes
# subnormal or 0 there, one above its largest (3.4e38) becomes inf, and either turns a row's
# probabilities into NaN. These round bounds sit inside the normal range.
FLOAT32_SAFE_MIN = 1e-37
FLOAT32_SAFE_MAX = 1e37


@dataclass(frozen=True)
class Parameters:
    """A request's generation parameters as the client gave them (types already checked)."""

    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    max_new_tokens: int | None = None
    truncate: int | None = None
    best_of: int | None = None
    top_n_tokens: int | None = None
    return_full_text: bool | None = None
    details: bool = False
    decoder_input_details: bool = False
    watermark: bool = False
    stop: tuple[str, ...] = ()
    grammar: GrammarSpec | None = None
    adapter: AdapterSelection | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # OpenAI's (token id, bias); the vocabulary is checked later

    @property
    def sampling(self) -> bool:
        """Temperature 0 means greedy (as the Inference API documents); setting temperature,
        top_k, top_p or typical_p turns sampling on."""
        if self.temperature == 0.0:
            return False
        implied = any(v is not None for v in (self.top_k, self.top_p, self.typical_p, self.temperature))
        return bool(self.do_sample) or implied


def build_request(inputs: str, params: Parameters, limits: RequestLimits, *, stream: bool,
                  return_full_text_default: bool = False, names: FieldNames = TGI_NAMES) -> GenerateRequest:
    """The typed request, or a ``ValidationError`` naming the client's field."""
    _check_best_of(params, limits, stream, names)
    _check_values(params, names)
    _check_lengths(params, limits, names)
    if params.seed is not None and (params.best_of or 1) > 1:
        raise ValidationError(f"`{names('seed')}` must not be set when `best_of` > 1")
    if inputs == "":
        raise ValidationError(f"`{names('inputs')}` cannot be empty")
    return GenerateRequest(
        inputs=inputs, sampling=_sampling(params), max_new_tokens=params.max_new_tokens, stop=params.stop,
        truncate=params.truncate,
        return_full_text=return_full_text_default if params.return_full_text is None else params.return_full_text,
        details=params.details or params.decoder_input_details, decoder_input_details=params.decoder_input_details,
        top_n_tokens=params.top_n_tokens or 0, best_of=1 if params.best_of is None else params.best_of,
        stream=stream, grammar=params.grammar, adapter=params.adapter)


def _sampling(p: Parameters) -> SamplingParams:
    sampling = p.sampling
    return SamplingParams(
        do_sample=sampling, temperature=p.temperature if sampling and p.temperature else 1.0,
        top_k=p.top_k or 0, top_p=p.top_p if p.top_p is not None else 1.0,
        typical_p=p.typical_p if p.typical_p is not None else 1.0,
        repetition_penalty=p.repetition_penalty if p.repetition_penalty is not None else 1.0,
        frequency_penalty=p.frequency_penalty or 0.0, seed=p.seed, watermark=p.watermark,
        logit_bias=p.logit_bias)


def _check_best_of(p: Parameters, limits: RequestLimits, stream: bool, names: FieldNames) -> None:
    best_of = 1 if p.best_of is None else p.best_of
    if best_of != 1 and stream:
        raise ValidationError("`best_of` != 1 is not supported when streaming tokens")
    if p.decoder_input_details and stream:
        raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
    if best_of != 1 and limits.max_best_of == 1:
        raise ValidationError("`best_of` != 1 is not allowed for this endpoint")
    if best_of == 0 or best_of > limits.max_best_of:
        raise ValidationError(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {best_of}")
    if best_of > 1 and not p.sampling:
        raise ValidationError("you must use sampling when `best_of` is > 1")


def _check_values(p: Parameters, names: FieldNames) -> None:
    if p.temperature is not None and p.temperature < 0.0:
        raise ValidationError(f"`{names('temperature')}` must be strictly positive")
    if p.repetition_penalty is not None and p.repetition_penalty <= 0.0:
        raise ValidationError(f"`{names('repetition_penalty')}` must be strictly positive")
    if p.frequency_penalty is not None and not -2.0 <= p.frequency_penalty <= 2.0:
        raise ValidationError(f"`{names('frequency_penalty')}` must be >= -2.0 and <= 2.0")
    # top_p/typical_p of 1.0 mean "off" (the Inference API's reading); TGI rejects 1.0.
    for key in ("top_p", "typical_p"):
        value = getattr(p, key)
        if value is not None and not 0.0 < value <= 1.0:
            raise ValidationError(f"`{names(key)}` must be > 0.0 and <= 1.0")
    if p.top_k is not None and p.top_k <= 0:
        raise ValidationError(f"`{names('top_k')}` must be strictly positive")
    for token, bias in p.logit_bias:
        if not -LOGIT_BIAS_LIMIT <= bias <= LOGIT_BIAS_LIMIT:
            raise ValidationError(f"`logit_bias` values must be >= -100 and <= 100. Given: {_number(bias)} "
                                  f"for token {token}")
    _check_float32(names("temperature"), p.temperature, note=" (or 0 for greedy)")
    _check_float32(names("top_p"), p.top_p, maximum=1.0)
    _check_float32(names("typical_p"), p.typical_p, maximum=1.0)
    _check_float32(names("repetition_penalty"), p.repetition_penalty)


def _check_lengths(p: Parameters, limits: RequestLimits, names: FieldNames) -> None:
    if p.max_new_tokens is not None and p.max_new_tokens == 0:
        raise ValidationError(f"`{names('max_new_tokens')}` must be strictly positive")
    if len(p.stop) > limits.max_stop_sequences:
        raise ValidationError(f"`{names('stop')}` supports up to {limits.max_stop_sequences} stop sequences. "
                              f"Given: {len(p.stop)}")
    top_n_tokens = p.top_n_tokens or 0
    if top_n_tokens > limits.max_top_n_tokens:
        raise ValidationError(f"`{names('top_n_tokens')}` must be >= 0 and <= {limits.max_top_n_tokens}. "
                              f"Given: {top_n_tokens}")


def _check_float32(name: str, value: float | None, maximum: float = FLOAT32_SAFE_MAX, note: str = "") -> None:
    """Reject a positive value that float32 sampling cannot represent as a normal number."""
    if value is not None and value > 0.0 and not FLOAT32_SAFE_MIN <= value <= maximum:
        raise ValidationError(f"`{name}` must be >= {_number(FLOAT32_SAFE_MIN)} and <= {_number(maximum)}{note}. "
                              f"Given: {_number(value)}")


def _number(value: float) -> str:
    """A float as a JSON author writes it: ``1.0``, ``1e-37``, ``1e37``."""
    return repr(value).replace("e+", "e")
