"""Reading JSON fields the way serde (TGI's parser) does, with its 422 texts.

Shared by every dialect, so a wrong type is worded the same whatever the route, and names the
field as the client wrote it (``parameters.top_k`` in a TGI body, ``max_tokens`` in an OpenAI one).
"""

from __future__ import annotations

import math

from ..errors import DeserializeError

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}

# TGI's integer types, whose range serde enforces before validation runs.
_INTEGER_MAX = {"i32": 2**31 - 1, "u32": 2**32 - 1, "u64": 2**64 - 1}


def describe(value) -> str:
    """A JSON value as serde names it in an error (``number `2.5```, ``a map``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"number `{value}`"
    if isinstance(value, str):
        return f"string {value!r}"
    return "a sequence" if isinstance(value, list) else "a map"


def typed(mapping: dict, key: str, kind: type, field: str, minimum: int | None = None):
    """``mapping[key]`` as ``kind`` (None when absent or null), or a 422 naming ``field``."""
    value = mapping.get(key)
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
        raise DeserializeError(f"{field}: invalid type: {describe(value)}, expected {expected}")
    return value


def typed_integer(mapping: dict, key: str, rust_type: str, field: str) -> int | None:
    """``typed`` for a TGI integer (``u32``, ``u64``, ``i32``), with serde's out-of-range text."""
    value = typed(mapping, key, int, field, minimum=0 if rust_type.startswith("u") else None)
    if value is not None and value > _INTEGER_MAX[rust_type]:
        raise DeserializeError(f"{field}: invalid value: integer `{value}`, expected {rust_type}")
    return value


def stop_sequences(value, field: str) -> tuple[str, ...]:
    """A list of stop strings; empty strings stop nothing and are dropped."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DeserializeError(f"{field}: invalid type: {describe(value)}, expected a sequence of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise DeserializeError(f"{field}[{index}]: invalid type: {describe(item)}, expected a string")
    return tuple(s for s in value if s)


def stream_flag(body: dict) -> bool:
    """The body's ``stream`` (absent or null: false)."""
    flag = body.get("stream")
    if flag is not None and not isinstance(flag, bool):
        raise DeserializeError(f"stream: invalid type: {describe(flag)}, expected a boolean")
    return bool(flag)
