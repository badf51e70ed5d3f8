"""TGI's request body (``GenerateRequest`` / ``CompatGenerateRequest``) -> the typed request.

Unknown keys are ignored and ``null`` means "not set", as TGI (serde) does; a wrong type is a 422
naming ``parameters.<key>``. The value rules and defaults are the request room's, shared with
the OpenAI dialects.
"""

from __future__ import annotations

from ...errors import DeserializeError
from ...request import AdapterSelection, GenerateRequest, Parameters, RequestLimits, build_request
from ..fields import describe, stop_sequences, stream_flag, typed, typed_integer
from ..grammar_fields import parse_grammar


def parse_generate_body(body, limits: RequestLimits, *, stream: bool | None = None,
                        return_full_text_default: bool = False) -> GenerateRequest:
    """The typed request of a TGI body. ``stream`` forces the mode for routes that imply it
    (``/generate_stream``); otherwise the body's ``"stream"`` decides, as TGI's compat route does."""
    inputs = body_inputs(body)
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DeserializeError(f"parameters: invalid type: {describe(params)}, expected a map")
    stream = stream_flag(body) if stream is None else stream
    return build_request(inputs, read_parameters(params), limits, stream=stream,
                         return_full_text_default=return_full_text_default)


def body_inputs(body) -> str:
    """A TGI body's ``inputs`` (also ``/tokenize``'s), or serde's 422 for the body or the field."""
    if not isinstance(body, dict):
        raise DeserializeError(f"invalid type: {describe(body)}, expected a map with an `inputs` string")
    if "inputs" not in body:
        raise DeserializeError("missing field `inputs`")
    inputs = body["inputs"]
    if not isinstance(inputs, str):
        raise DeserializeError(f"inputs: invalid type: {describe(inputs)}, expected a string")
    return inputs


def read_parameters(params: dict) -> Parameters:
    """``parameters`` with serde's types (TGI's Rust types named where serde checks a range)."""
    def field(key: str) -> str:
        return f"parameters.{key}"

    def flag(key: str) -> bool | None:
        return typed(params, key, bool, field(key))

    def number(key: str) -> float | None:
        return typed(params, key, float, field(key))

    def integer(key: str, rust_type: str) -> int | None:
        return typed_integer(params, key, rust_type, field(key))

    return Parameters(
        do_sample=flag("do_sample"), temperature=number("temperature"), top_k=integer("top_k", "i32"),
        top_p=number("top_p"), typical_p=number("typical_p"), repetition_penalty=number("repetition_penalty"),
        frequency_penalty=number("frequency_penalty"), seed=integer("seed", "u64"),
        max_new_tokens=integer("max_new_tokens", "u32"), truncate=integer("truncate", "u64"),
        best_of=integer("best_of", "u64"), top_n_tokens=integer("top_n_tokens", "u32"),
        return_full_text=flag("return_full_text"), details=flag("details") or False,
        decoder_input_details=flag("decoder_input_details") or False, watermark=flag("watermark") or False,
        stop=stop_sequences(params.get("stop"), field("stop")), grammar=parse_grammar(params.get("grammar")),
        adapter=adapter_selection(typed(params, "adapter_id", str, field("adapter_id"))))


def adapter_selection(adapter_id: str | None) -> AdapterSelection | None:
    """TGI's ``adapter_id``: a LoRA adapter that must be registered (an empty one means the base)."""
    return AdapterSelection(adapter_id, "parameters.adapter_id") if adapter_id else None
