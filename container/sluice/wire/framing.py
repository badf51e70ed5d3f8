"""Wire framing of streamed responses: the one place that decides which bytes go on the wire.

TGI (axum >= 0.7) writes each event as ``data: `` + compact JSON + ``\\n\\n``; clients in the wild
(the JumpStart blog's TokenIterator, text-generation, huggingface_hub, LangChain) parse exactly
that, so every event is encoded here and written as its own HTTP chunk. The client-side parser in
``deploy/`` is tested against these encoders byte for byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_string  # the C version where there is one

SSE_CONTENT_TYPE = "text/event-stream"
NDJSON_CONTENT_TYPE = "application/jsonlines"
NDJSON_ACCEPT_TYPES = ("application/jsonlines", "application/x-ndjson", "application/jsonl")

# Chat and completions streams end with this line (TGI >= 2.2); huggingface_hub only recognises it
# with the space after the colon.
SSE_DONE = b"data: [DONE]\n\n"
# What TGI sends after 15 s without an event (long queueing or prefill).
SSE_KEEPALIVE = b":\n\n"


# No circular-reference check: payloads are trees built fresh by the protocols, and the check
# doubles the cost of the one-per-token encode.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)


def dump_json(payload) -> str:
    """Compact JSON with raw UTF-8, as serde_json writes it; a NaN or infinite float (a log-prob
    under an extreme penalty) becomes ``null``, as serde_json writes a NaN f32, never the invalid
    ``NaN``/``Infinity`` Python would. The common case stays one C call; only a payload that
    holds such a float pays for the copy."""
    try:
        return _ENCODER.encode(payload)
    except ValueError:  # allow_nan=False refused a non-finite float
        return _ENCODER.encode(_non_finite_as_null(payload))


def _non_finite_as_null(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _non_finite_as_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_non_finite_as_null(item) for item in value]
    return value


def encode_sse(payload) -> bytes:
    return b"data: " + dump_json(payload).encode("utf-8") + b"\n\n"


def encode_ndjson(payload) -> bytes:
    return dump_json(payload).encode("utf-8") + b"\n"


def json_string(text: str) -> str:
    """``text`` as a JSON string literal, exactly as ``dump_json`` writes strings."""
    return _encode_string(text)


@dataclass(frozen=True)
class StreamFormat:
    """How one streamed response is framed: SSE (the default) or strict NDJSON."""

    content_type: str
    is_sse: bool

    def encode(self, payload) -> bytes:
        return encode_sse(payload) if self.is_sse else encode_ndjson(payload)

    def frame(self, json_text: str) -> bytes:
        """One event already written as JSON (``dump_json``'s bytes), framed."""
        data = json_text.encode("utf-8")
        return b"data: " + data + b"\n\n" if self.is_sse else data + b"\n"

    def done(self) -> bytes:
        """The ``[DONE]`` terminator of chat/completions streams; NDJSON has none."""
        return SSE_DONE if self.is_sse else b""


SSE = StreamFormat(SSE_CONTENT_TYPE, is_sse=True)
NDJSON = StreamFormat(NDJSON_CONTENT_TYPE, is_sse=False)


def choose_stream_format(accept: str | None) -> StreamFormat:
    """NDJSON only when the client asks for it by Accept; SSE otherwise (TGI ignores Accept)."""
    if accept:
        wanted = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if any(kind in NDJSON_ACCEPT_TYPES for kind in wanted):
            return NDJSON
    return SSE
