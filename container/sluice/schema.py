"""The TGI request schema: body -> typed request, with TGI's defaults and exact 422 messages.

Pure Python on purpose (no Flask, no torch): the same rules serve every route, and the defaults
live here only. Token-count checks need the tokenizer and live in ``validation``.
Unknown keys are ignored and ``null`` means "not set", as TGI (serde) does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import DeserializeError, ValidationError
from .grammar_spec import GrammarSpec, parse_grammar


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen for one sequence; ``do_sample=False`` means greedy."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    watermark: bool = False

    @property
    def needs_processing(self) -> bool:
        """Whether logits need per-sequence work beyond argmax (penalties or sampling)."""
        return self.do_sample or self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0


@dataclass(frozen=True)
class GenerateRequest:
    inputs: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int | None = None  # None: the server default
    stop: tuple[str, ...] = ()
    truncate: int | None = None
    return_full_text: bool = False
    details: bool = False
    decoder_input_details: bool = False
    top_n_tokens: int = 0
    best_of: int = 1
    stream: bool = False
    grammar: GrammarSpec | None = None  # the output must match it (TGI's ``parameters.grammar``)


@dataclass(frozen=True)
class SchemaLimits:
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_best_of: int = 2


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}

# TGI's integer types, whose range serde enforces before validation runs.
_INTEGER_MAX = {"i32": 2**31 - 1, "u32": 2**32 - 1, "u64": 2**64 - 1}

# Sampling runs in float32: a parameter below float32's smallest normal value (1.18e-38) becomes
# subnormal or 0 there, one above its largest (3.4e38) becomes inf, and either turns a row's
# probabilities into NaN. These round bounds sit inside the normal range.
FLOAT32_SAFE_MIN = 1e-37
FLOAT32_SAFE_MAX = 1e37


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"
    return "a sequence" if isinstance(value, list) else "a map"


def _typed(params: dict, key: str, kind: type, minimum: int | None = None):
    """Read ``parameters[key]`` as ``kind`` the way serde would, or raise a 422."""
    value = params.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if kind is int and isinstance(value, float) and value.is_integer():
        ok = False  # serde rejects 2.0 for an integer field, and so do we
    if ok and kind is float and not math.isfinite(value):
        ok = False
    if ok and minimum is not None and value < minimum:
        ok = False
    if not ok:
        expected = _TYPE_NAMES[kind] if minimum is None else f"{_TYPE_NAMES[kind]} >= {minimum}"
        raise DeserializeError(f"parameters.{key}: invalid type: {_describe(value)}, expected {expected}")
    return value


def _typed_integer(params: dict, key: str, rust_type: str) -> int | None:
    """``_typed`` for an unsigned/signed TGI integer, with serde's out-of-range text."""
    value = _typed(params, key, int, minimum=0 if rust_type.startswith("u") else None)
    if value is not None and value > _INTEGER_MAX[rust_type]:
        raise DeserializeError(f"parameters.{key}: invalid value: integer `{value}`, expected {rust_type}")
    return value


def _check_float32(key: str, value: float | None, maximum: float = FLOAT32_SAFE_MAX,
                   note: str = "") -> None:
    """Reject a positive value that float32 sampling cannot represent as a normal number."""
    if value is not None and value > 0.0 and not FLOAT32_SAFE_MIN <= value <= maximum:
        raise ValidationError(f"`{key}` must be >= {_number(FLOAT32_SAFE_MIN)} and <= {_number(maximum)}{note}. "
                              f"Given: {_number(value)}")


def _number(value: float) -> str:
    """A float as a JSON author writes it: ``1.0``, ``1e-37``, ``1e37``."""
    return repr(value).replace("e+", "e")


def _stop_sequences(params: dict) -> tuple[str, ...]:
    stop = params.get("stop")
    if stop is None:
        return ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise DeserializeError(f"parameters.stop: invalid type: {_describe(stop)}, expected a sequence of strings")
    return tuple(s for s in stop if s)


def parse_generate_request(body, limits: SchemaLimits, *, stream: bool | None = None,
                           return_full_text_default: bool = False) -> GenerateRequest:
    """Turn a TGI ``GenerateRequest``/``CompatGenerateRequest`` body into a validated request.

    ``stream`` forces the mode for routes that imply it (``/generate_stream``); otherwise the
    body's ``"stream"`` decides, as TGI's compat route does.
    """
    if not isinstance(body, dict):
        raise DeserializeError(f"invalid type: {_describe(body)}, expected a map with an `inputs` string")
    if "inputs" not in body:
        raise DeserializeError("missing field `inputs`")
    inputs = body["inputs"]
    if not isinstance(inputs, str):
        raise DeserializeError(f"inputs: invalid type: {_describe(inputs)}, expected a string")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DeserializeError(f"parameters: invalid type: {_describe(params)}, expected a map")
    if stream is None:
        flag = body.get("stream")
        if flag is not None and not isinstance(flag, bool):
            raise DeserializeError(f"stream: invalid type: {_describe(flag)}, expected a boolean")
        stream = bool(flag)
    return _validate(inputs, params, limits, stream, return_full_text_default)


def _validate(inputs: str, params: dict, limits: SchemaLimits, stream: bool,
              return_full_text_default: bool) -> GenerateRequest:
    do_sample = _typed(params, "do_sample", bool)
    temperature = _typed(params, "temperature", float)
    top_k = _typed_integer(params, "top_k", "i32")
    top_p = _typed(params, "top_p", float)
    typical_p = _typed(params, "typical_p", float)
    repetition_penalty = _typed(params, "repetition_penalty", float)
    frequency_penalty = _typed(params, "frequency_penalty", float)
    seed = _typed_integer(params, "seed", "u64")
    max_new_tokens = _typed_integer(params, "max_new_tokens", "u32")
    truncate = _typed_integer(params, "truncate", "u64")  # usize
    best_of = _typed_integer(params, "best_of", "u64")  # usize
    top_n_tokens = _typed_integer(params, "top_n_tokens", "u32")
    return_full_text = _typed(params, "return_full_text", bool)
    details = _typed(params, "details", bool) or False
    decoder_input_details = _typed(params, "decoder_input_details", bool) or False
    watermark = _typed(params, "watermark", bool) or False
    stop = _stop_sequences(params)
    grammar = parse_grammar(params.get("grammar"))

    # Temperature 0 means greedy (as the Inference API documents); setting temperature, top_k,
    # top_p or typical_p turns sampling on.
    greedy_by_temperature = temperature == 0.0
    sampling_implied = any(v is not None for v in (top_k, top_p, typical_p)) or (
        temperature is not None and not greedy_by_temperature)
    sampling = (bool(do_sample) or sampling_implied) and not greedy_by_temperature

    best_of = 1 if best_of is None else best_of
    if best_of != 1 and stream:
        raise ValidationError("`best_of` != 1 is not supported when streaming tokens")
    if decoder_input_details and stream:
        raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
    if best_of != 1 and limits.max_best_of == 1:
        raise ValidationError("`best_of` != 1 is not allowed for this endpoint")
    if best_of == 0 or best_of > limits.max_best_of:
        raise ValidationError(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {best_of}")
    if best_of > 1 and not sampling:
        raise ValidationError("you must use sampling when `best_of` is > 1")
    if temperature is not None and temperature < 0.0:
        raise ValidationError("`temperature` must be strictly positive")
    if repetition_penalty is not None and repetition_penalty <= 0.0:
        raise ValidationError("`repetition_penalty` must be strictly positive")
    if frequency_penalty is not None and not -2.0 <= frequency_penalty <= 2.0:
        raise ValidationError("`frequency_penalty` must be >= -2.0 and <= 2.0")
    # top_p/typical_p of 1.0 mean "off" (the Inference API's reading); TGI rejects 1.0.
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValidationError("`top_p` must be > 0.0 and <= 1.0")
    if typical_p is not None and not 0.0 < typical_p <= 1.0:
        raise ValidationError("`typical_p` must be > 0.0 and <= 1.0")
    if top_k is not None and top_k <= 0:
        raise ValidationError("`top_k` must be strictly positive")
    _check_float32("temperature", temperature, note=" (or 0 for greedy)")
    _check_float32("top_p", top_p, maximum=1.0)
    _check_float32("typical_p", typical_p, maximum=1.0)
    _check_float32("repetition_penalty", repetition_penalty)
    if max_new_tokens is not None and max_new_tokens == 0:
        raise ValidationError("`max_new_tokens` must be strictly positive")
    if len(stop) > limits.max_stop_sequences:
        raise ValidationError(f"`stop` supports up to {limits.max_stop_sequences} stop sequences. "
                              f"Given: {len(stop)}")
    top_n_tokens = top_n_tokens or 0
    if top_n_tokens > limits.max_top_n_tokens:
        raise ValidationError(f"`top_n_tokens` must be >= 0 and <= {limits.max_top_n_tokens}. "
                              f"Given: {top_n_tokens}")
    if seed is not None and best_of > 1:
        raise ValidationError("`seed` must not be set when `best_of` > 1")
    if inputs == "":
        raise ValidationError("`inputs` cannot be empty")

    return GenerateRequest(
        inputs=inputs,
        sampling=SamplingParams(
            do_sample=sampling,
            temperature=temperature if sampling and temperature else 1.0,
            top_k=top_k or 0,
            top_p=top_p if top_p is not None else 1.0,
            typical_p=typical_p if typical_p is not None else 1.0,
            repetition_penalty=repetition_penalty if repetition_penalty is not None else 1.0,
            frequency_penalty=frequency_penalty or 0.0,
            seed=seed,
            watermark=watermark,
        ),
        max_new_tokens=max_new_tokens,
        stop=stop,
        truncate=truncate,
        return_full_text=return_full_text_default if return_full_text is None else return_full_text,
        details=details or decoder_input_details,
        decoder_input_details=decoder_input_details,
        top_n_tokens=top_n_tokens,
        best_of=best_of,
        stream=stream,
        grammar=grammar,
    )
