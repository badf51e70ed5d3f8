"""What TGI's two OpenAI dialects (chat completions, completions) share: the parameters read from
the top level of the body under OpenAI's names, the envelope every body repeats, usage and
finish reasons.

Errors name the client's fields: a bad ``max_tokens`` is ``max_tokens: invalid type ...`` or
``` `max_tokens` must be strictly positive```, never TGI's ``parameters.max_new_tokens``.
"""

from __future__ import annotations

import time
import uuid

from ...errors import DeserializeError, ServerError, ValidationError
from ...request import AdapterSelection, FieldNames, Parameters
from ...request.rules import FLOAT32_SAFE_MAX, FLOAT32_SAFE_MIN
from ...text.events import Finish
from ..fields import describe, stop_sequences, typed, typed_integer
from .errors import error_event

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def field_names(body: dict, inputs: str) -> FieldNames:
    """Canonical names -> the ones this body used (``max_completion_tokens`` if it sent that)."""
    max_tokens = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    return FieldNames({"max_new_tokens": max_tokens, "top_n_tokens": "top_logprobs", "inputs": inputs})


def read_parameters(body: dict, names: FieldNames) -> Parameters:
    """TGI's mapping of OpenAI fields to generation parameters: ``temperature`` 0 is greedy, any
    other value samples; ``presence_penalty`` p is ``repetition_penalty`` p + 2.0;
    ``top_logprobs`` counts only with ``logprobs``; ``details`` always (the answer needs the
    finish reason and token counts)."""
    def number(key: str) -> float | None:
        return typed(body, key, float, key)

    temperature = number("temperature")
    logprobs = typed(body, "logprobs", bool, "logprobs")
    top_logprobs = typed_integer(body, "top_logprobs", "u32", "top_logprobs")
    if top_logprobs and not logprobs:  # would be computed and never shown (TGI); vLLM's rule
        raise ValidationError("when using `top_logprobs`, `logprobs` must be set to true")
    typed(body, "model", str, "model")
    return Parameters(
        do_sample=None if temperature is None else temperature != 0,
        temperature=temperature if temperature != 0 else None,
        top_p=number("top_p"), seed=typed_integer(body, "seed", "u64", "seed"),
        frequency_penalty=number("frequency_penalty"), repetition_penalty=_repetition_penalty(number),
        max_new_tokens=_max_tokens(body, names), top_n_tokens=top_logprobs if logprobs else None,
        stop=_stop(body.get("stop")), details=True, adapter=model_adapter(body),
        logit_bias=_logit_bias(body.get("logit_bias")))


def _max_tokens(body: dict, names: FieldNames) -> int | None:
    """``max_completion_tokens`` (OpenAI's newer name) or ``max_tokens``; both with different
    values is a 422 (serde, which reads one as the other's alias, refuses both), never one of
    them silently dropped."""
    values = {key: typed_integer(body, key, "u32", key) for key in ("max_tokens", "max_completion_tokens")}
    if None not in values.values() and values["max_tokens"] != values["max_completion_tokens"]:
        raise DeserializeError(f"max_completion_tokens: `{values['max_completion_tokens']}` disagrees with "
                               f"max_tokens: `{values['max_tokens']}`; send one of them")
    return values[names("max_new_tokens")]


def model_adapter(body: dict) -> AdapterSelection | None:
    """OpenAI's ``model`` as TGI reads it: the name of a LoRA adapter, unless it is ``"tgi"`` (the
    base). Serving decides what a name that is no adapter means (the served model's own name is
    the base; see ``serving.adapters``)."""
    model = body.get("model")
    if not isinstance(model, str) or model in ("", "tgi"):
        return None
    return AdapterSelection(model, "model", strict=False)


def _logit_bias(value) -> tuple[tuple[int, float], ...]:
    """OpenAI's ``logit_bias``: a map from token ids (JSON keys are strings) to numbers."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise DeserializeError(f"logit_bias: invalid type: {describe(value)}, expected a map")
    biases = []
    for key, bias in value.items():
        if not key.isascii() or not key.isdigit():
            raise DeserializeError(f"logit_bias: invalid value: string {key!r}, expected a token id")
        bias = typed(value, key, float, f"logit_bias.{key}")
        if bias is None:
            raise DeserializeError(f"logit_bias.{key}: invalid type: null, expected a number")
        biases.append((int(key), bias))
    return tuple(sorted(biases))


def _repetition_penalty(number) -> float | None:
    """TGI's chat mapping: ``presence_penalty`` p becomes ``repetition_penalty`` p + 2.0 (so it is
    never silently dropped); Sluice's own ``repetition_penalty`` key, when given, wins."""
    explicit = number("repetition_penalty")
    presence = number("presence_penalty")
    if explicit is not None or presence is None:
        return explicit
    if not FLOAT32_SAFE_MIN <= presence + 2.0 <= FLOAT32_SAFE_MAX:  # named as sent, not `repetition_penalty`
        raise ValidationError("`presence_penalty` must be > -2.0 and < 1e37 (it is applied as TGI's "
                              f"`repetition_penalty` p + 2.0). Given: {repr(presence).replace('e+', 'e')}")
    return presence + 2.0


def _stop(value) -> tuple[str, ...]:
    """OpenAI's ``stop``: one string or a list of them."""
    return stop_sequences([value] if isinstance(value, str) else value, "stop")


def include_usage(body: dict) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise DeserializeError(f"stream_options: invalid type: {describe(options)}, expected a map")
    return bool(typed(options, "include_usage", bool, "stream_options.include_usage"))


def model_name(body: dict, served: str) -> str:
    """The model the answer names: the body's (huggingface_hub sends ``"dummy"``; ``"tgi"``
    means the served one), as TGI echoes it."""
    model = body.get("model")
    return model if isinstance(model, str) and model and model != "tgi" else served


def usage(finishes: list[Finish], n: int = 1) -> dict:
    """Each prompt's tokens once (``n`` choices in a row share one), every choice's completion."""
    prompt = sum(f.input_length for f in finishes[::n])
    completion = sum(f.generated_tokens for f in finishes)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Envelope:
    """The fields every OpenAI-shaped body of one response repeats, its id included: one id per
    response, in every chunk of a stream (TGI sends ``""``; OpenAI's clients and tools key
    responses on ``chatcmpl-...`` / ``cmpl-...`` ids, as OpenAI and vLLM send them)."""

    def __init__(self, model: str, fingerprint: str, obj: str, id_prefix: str):
        self.fields = {"object": obj, "id": f"{id_prefix}{uuid.uuid4().hex}", "created": int(time.time()),
                       "model": model, "system_fingerprint": fingerprint}

    def __call__(self, **body) -> dict:
        return dict(self.fields, **body)


class OpenAIDialect:
    """What both OpenAI routes share: the body's ``stream`` flag decides, and errors use OpenAI's
    envelope (with TGI's ``http_status_code`` beside its ``type``)."""

    @staticmethod
    def wants_stream(body) -> bool:
        return isinstance(body, dict) and body.get("stream") is True

    @staticmethod
    def encode_error(error: ServerError) -> dict:
        return error_event(error)
