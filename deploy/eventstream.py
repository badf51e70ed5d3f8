"""AWS event-stream binary framing (``application/vnd.amazon.eventstream``), both directions.

``InvokeEndpointWithResponseStream`` answers with a sequence of these messages, and botocore only
ships a decoder, so the local runtime needs this encoder to speak the real wire format to an
unmodified boto3 client. The decoder exists for tests and debugging (``curl | decode_messages``).

Message layout (all integers big-endian)::

    prelude:  total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes
    headers:  name length (uint8) | name | value type (uint8, 7 = string) | length (uint16) | value
    payload:  raw bytes
    trailer:  CRC32 of everything before it
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import NamedTuple

STRING_HEADER = 7
PRELUDE_LENGTH = 12
TRAILER_LENGTH = 4
CONTENT_TYPE = "application/vnd.amazon.eventstream"


class EventStreamDecodeError(ValueError):
    """Bytes that are not a well-formed event-stream message (bad length or checksum)."""


class Message(NamedTuple):
    headers: dict[str, str]
    payload: bytes


def _crc32(data: bytes, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def _encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if len(raw_name) > 0xFF or len(raw_value) > 0xFFFF:
            raise ValueError(f"event-stream header {name!r} is too long")
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", STRING_HEADER, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One complete message with string headers only (all SageMaker runtime events need)."""
    raw_headers = _encode_headers(headers)
    total = PRELUDE_LENGTH + len(raw_headers) + len(payload) + TRAILER_LENGTH
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", _crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", _crc32(body))


def encode_payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event carrying ``data`` (bytes the container wrote) verbatim."""
    return encode_message({":event-type": "PayloadPart", ":message-type": "event",
                           ":content-type": "application/octet-stream"}, bytes(data))


def encode_exception(exception_type: str, message: str, error_code: str | None = None) -> bytes:
    """An exception event (``ModelStreamError`` / ``InternalStreamFailure``) ending a stream.

    boto3 raises it as ``botocore.exceptions.EventStreamError`` from the caller's ``for`` loop.
    """
    body = {"Message": message}
    if error_code is not None:
        body["ErrorCode"] = error_code
    return encode_message({":exception-type": exception_type, ":message-type": "exception",
                           ":content-type": "application/json"},
                          json.dumps(body).encode("utf-8"))


def _decode_headers(raw: bytes) -> dict[str, str]:
    headers, pos = {}, 0
    while pos < len(raw):
        name_len = raw[pos]
        name = raw[pos + 1:pos + 1 + name_len].decode("utf-8")
        pos += 1 + name_len
        value_type, value_len = struct.unpack_from(">BH", raw, pos)
        if value_type != STRING_HEADER:
            raise EventStreamDecodeError(f"header {name!r} has type {value_type}; only strings")
        pos += 3
        headers[name] = raw[pos:pos + value_len].decode("utf-8")
        pos += value_len
    return headers


def decode_message(data: bytes) -> tuple[Message, int]:
    """The first message in ``data`` and the number of bytes it used; checks both CRCs."""
    if len(data) < PRELUDE_LENGTH:
        raise EventStreamDecodeError("truncated prelude")
    total, headers_len, prelude_crc = struct.unpack_from(">III", data)
    if _crc32(data[:8]) != prelude_crc:
        raise EventStreamDecodeError("prelude checksum mismatch")
    if len(data) < total or total < PRELUDE_LENGTH + headers_len + TRAILER_LENGTH:
        raise EventStreamDecodeError("truncated message")
    (message_crc,) = struct.unpack_from(">I", data, total - TRAILER_LENGTH)
    if _crc32(data[:total - TRAILER_LENGTH]) != message_crc:
        raise EventStreamDecodeError("message checksum mismatch")
    headers_end = PRELUDE_LENGTH + headers_len
    headers = _decode_headers(bytes(data[PRELUDE_LENGTH:headers_end]))
    return Message(headers, bytes(data[headers_end:total - TRAILER_LENGTH])), total


def decode_messages(data: bytes) -> list[Message]:
    """Every message in a complete event-stream body (e.g. a captured HTTP response)."""
    messages, view = [], memoryview(data)
    while len(view):
        message, used = decode_message(view)
        messages.append(message)
        view = view[used:]
    return messages
