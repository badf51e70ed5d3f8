"""Client-side parsing of a streamed response: events and tokens out of ``PayloadPart`` bytes.

SageMaker does not align ``PayloadPart`` boundaries with events or lines: one part can hold half a
line, several lines, or half of a multi-byte UTF-8 character. So bytes are buffered and only whole
lines are decoded. Unlike the TokenIterator circulated with the JumpStart streaming blog, this
parser strips the ``data:`` prefix rather than a character set, accepts ``\\r\\n``, SSE comments and
keep-alives (``:``), ``event:``/``id:``/``retry:`` lines, NDJSON, a last line without a newline
and ``data: [DONE]``; it turns error events into typed exceptions instead of ``KeyError``; and it
bounds its buffer.

A request sent without ``"stream": true`` still works through ``invoke_endpoint_with_response_stream``:
the container answers with its whole, non-streamed body, which arrives as one line. `TokenIterator`
yields that body's text as one piece and warns (`NotStreamedWarning`) rather than yield nothing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator

from deploy.errors import (
    ERROR_TYPE_BY_STATUS,
    InternalStreamFailure,
    ModelStreamError,
    StreamError,
    StreamFormatError,
    container_error,
)

try:  # boto3 is optional for callers that feed raw bytes (e.g. requests.iter_content)
    from botocore.exceptions import EventStreamError
except ImportError:  # pragma: no cover - botocore is a dependency of the deploy package
    EventStreamError = None

MAX_LINE_BYTES = 8 * 1024 * 1024
DONE = object()  # the ``data: [DONE]`` terminator of chat and completions streams
_IGNORED_SSE_FIELDS = ("event", "id", "retry")


class NotStreamedWarning(UserWarning):
    """The endpoint answered with one whole body instead of a token stream.

    TGI and OpenAI servers stream only when the request says ``"stream": true``; without it the
    answer arrives at once. `TokenIterator` still yields its text (as one piece) and warns once, so
    the missing flag is noticed instead of the loop silently printing nothing.
    """


def whole_body_texts(event) -> list[str] | None:
    """The texts of a non-streamed response body, or None when ``event`` is a stream event.

    TGI answers ``[{"generated_text": ...}]`` (``/invocations``) or ``{"generated_text": ...}``
    (``/generate``); a stream event carries ``token`` beside its ``generated_text``. OpenAI chat
    answers ``{"choices": [{"message": {"content": ...}}]}``; its chunks carry ``delta``.
    Completions bodies are absent here: whole or streamed, their shape is the same
    (``choices[].text``) and `TokenIterator` reads both.
    """
    if isinstance(event, list):
        if event and all(isinstance(item, dict) and isinstance(item.get("generated_text"), str) for item in event):
            return [item["generated_text"] for item in event]
        return None
    if not isinstance(event, dict):
        return None
    if "token" not in event and isinstance(event.get("generated_text"), str):
        return [event["generated_text"]]
    choices = event.get("choices")
    if isinstance(choices, list) and any(isinstance(c, dict) and "message" in c for c in choices):
        return [c["message"].get("content") or "" for c in choices
                if isinstance(c, dict) and isinstance(c.get("message"), dict)]
    return None


class LineBuffer:
    """Bytes in, complete lines out; the buffer is compacted as lines are consumed.

    A line longer than ``max_line_bytes`` raises `StreamFormatError`: without the bound a stream
    that never sends a newline would grow the client's memory until it dies.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES):
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for b"\n", so long lines stay linear

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines, start = [], 0
        while (end := self._buffer.find(b"\n", max(start, self._scanned))) != -1:
            if end - start > self.max_line_bytes:
                raise StreamFormatError(f"stream line exceeds {self.max_line_bytes} bytes")
            lines.append(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
        self._scanned = len(self._buffer)
        if len(self._buffer) > self.max_line_bytes:
            raise StreamFormatError(
                f"stream line exceeds {self.max_line_bytes} bytes without a newline")
        return lines

    def finish(self) -> bytes | None:
        """The last line when the stream ended without a newline, else None."""
        tail, self._buffer, self._scanned = bytes(self._buffer), bytearray(), 0
        return tail or None


def parse_line(raw: bytes):
    """One line -> a JSON value, `DONE`, or None for lines that carry no event.

    SSE: ``data:`` with or without the space, comments and keep-alives (``:``), blank lines and
    ``event:``/``id:``/``retry:`` fields. NDJSON: a line that is one JSON value. Anything else is
    an error rather than silently dropped, so a wrong content type is noticed.
    """
    try:
        line = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as error:
        raise StreamFormatError(f"stream line is not UTF-8: {raw[:200]!r}") from error
    if not line.strip() or line.startswith(":"):
        return None
    field, colon, value = line.partition(":")
    if colon and field == "data":
        value = value[1:] if value.startswith(" ") else value
        if value.strip() == "[DONE]":
            return DONE
        return _loads(value)
    if colon and field in _IGNORED_SSE_FIELDS:
        return None
    if line.lstrip().startswith(("{", "[")):
        return _loads(line)
    raise StreamFormatError(f"not an SSE or NDJSON line: {line[:200]!r}")


def _loads(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise StreamFormatError(f"invalid JSON in stream: {text[:200]!r}") from error


def raise_for_error_event(event) -> None:
    """Raise the typed exception of an in-band error event; other events pass.

    TGI compat streams send ``{"error": str, "error_type": str}``; chat and completion streams
    send OpenAI-style ``{"error": {"message": str, "http_status_code": int, "type"?: str}}``:
    Sluice names the type, TGI only the status, from which the type is then inferred, so the
    same fault raises the same exception whichever dialect the stream spoke.
    """
    if not isinstance(event, dict) or event.get("error") is None:
        return
    error = event["error"]
    if isinstance(error, dict):
        error_type = error.get("type") or ERROR_TYPE_BY_STATUS.get(error.get("http_status_code"))
        raise container_error(str(error.get("message", error)), error_type)
    raise container_error(str(error), event.get("error_type"))


def iter_payload_bytes(stream) -> Iterator[bytes]:
    """Bytes of each part of a boto3 EventStream, a list of event dicts, or raw byte chunks.

    ``ModelStreamError``/``InternalStreamFailure`` events, and botocore's ``EventStreamError``
    raised from the iteration itself, become this package's typed exceptions.
    """
    iterator = iter(stream)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as error:
            if EventStreamError is not None and isinstance(error, EventStreamError):
                raise _from_event_stream_error(error) from error
            raise
        if isinstance(item, (bytes, bytearray, memoryview)):
            yield bytes(item)
        elif isinstance(item, dict):
            yield from _payload_of_event(item)
        else:
            raise StreamFormatError(f"unexpected stream item of type {type(item).__name__}")


def _payload_of_event(event: dict) -> Iterator[bytes]:
    if "PayloadPart" in event:
        yield event["PayloadPart"].get("Bytes", b"")
    elif "ModelStreamError" in event:
        body = event["ModelStreamError"]
        raise ModelStreamError(body.get("Message", ""), body.get("ErrorCode"))
    elif "InternalStreamFailure" in event:
        raise InternalStreamFailure(event["InternalStreamFailure"].get("Message", ""))
    # Other event types are ignored: the service may add new ones.


def _from_event_stream_error(error) -> StreamError:
    details = error.response.get("Error", {})
    code, message = details.get("Code"), details.get("Message", str(error))
    if code == "InternalStreamFailure":
        return InternalStreamFailure(message)
    if code == "ModelStreamError":
        return ModelStreamError(message, error.response.get("ErrorCode"))
    return StreamError(f"{code}: {message}")


class EventIterator:
    """Iterate the JSON events (dicts) of a streamed response.

    ``stream`` is ``response["Body"]`` of ``invoke_endpoint_with_response_stream``, any iterable
    of ``{"PayloadPart": {"Bytes": b}}`` dicts, or raw byte chunks. After iteration ``last_event``
    is the final event, so ``generated_text`` and ``details`` are TGI's final answer (when the
    request asked for ``details``).
    """

    def __init__(self, stream: Iterable, max_line_bytes: int = MAX_LINE_BYTES):
        self.events = 0
        self.last_event: dict | None = None
        self.done = False
        self._source = self._generate(stream, max_line_bytes)

    def __iter__(self) -> "EventIterator":
        return self

    def __next__(self) -> dict:
        return next(self._source)

    @property
    def generated_text(self) -> str | None:
        """TGI's final text: the last stream event's, or a whole ``[{"generated_text": ...}]`` body's."""
        event = self.last_event
        if isinstance(event, list) and len(event) == 1:
            event = event[0]
        return event.get("generated_text") if isinstance(event, dict) else None

    @property
    def details(self) -> dict | None:
        event = self.last_event
        if isinstance(event, list) and len(event) == 1:
            event = event[0]
        return event.get("details") if isinstance(event, dict) else None

    def _generate(self, stream, max_line_bytes: int) -> Iterator[dict]:
        lines = LineBuffer(max_line_bytes)
        for chunk in iter_payload_bytes(stream):
            for line in lines.feed(chunk):
                event = parse_line(line)
                if event is DONE:
                    self.done = True
                    return
                if event is not None:
                    yield self._accept(event)
        tail = lines.finish()
        event = parse_line(tail) if tail else None
        if event is DONE:
            self.done = True
        elif event is not None:
            yield self._accept(event)

    def _accept(self, event):
        raise_for_error_event(event)
        self.events += 1
        self.last_event = event
        return event


class TokenIterator:
    """Iterate the token texts of a streamed response; a drop-in for the blog's TokenIterator.

    TGI events yield ``token.text`` (special tokens such as ``</s>`` skipped unless
    ``skip_special_tokens=False``); chat-completion chunks yield ``choices[0].delta.content`` and
    completion chunks ``choices[0].text``. Events without text are skipped. A whole, non-streamed
    body (the request lacked ``"stream": true``) yields its text as one piece, with a
    `NotStreamedWarning`; an error body raises its typed exception, as an error event does.
    """

    def __init__(self, stream: Iterable, skip_special_tokens: bool = True,
                 max_line_bytes: int = MAX_LINE_BYTES):
        self.skip_special_tokens = skip_special_tokens
        self.event_iterator = EventIterator(stream, max_line_bytes)
        self._pending: list[str] = []  # the further texts of a multi-answer whole body

    def __iter__(self) -> "TokenIterator":
        return self

    def __next__(self) -> str:
        if self._pending:
            return self._pending.pop(0)
        for event in self.event_iterator:
            texts = self._texts_of(event)
            self._pending = [text for text in texts if text]
            if self._pending:
                return self._pending.pop(0)
        raise StopIteration

    def _texts_of(self, event) -> list[str]:
        whole = whole_body_texts(event)
        if whole is not None:
            warnings.warn('the endpoint sent its whole answer at once, not a token stream: add '
                          '"stream": true to the request body to receive tokens as they are generated',
                          NotStreamedWarning, stacklevel=3)
            return whole
        if not isinstance(event, dict):
            return []
        token = event.get("token")
        if isinstance(token, dict):
            if token.get("special") and self.skip_special_tokens:
                return []
            return [token.get("text")]
        choices = event.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            delta = choices[0].get("delta")
            if isinstance(delta, dict):
                return [delta.get("content")]
            return [choice.get("text") for choice in choices if isinstance(choice, dict)]
        return []

    @property
    def events(self) -> int:
        return self.event_iterator.events

    @property
    def last_event(self) -> dict | None:
        return self.event_iterator.last_event

    @property
    def generated_text(self) -> str | None:
        return self.event_iterator.generated_text

    @property
    def details(self) -> dict | None:
        return self.event_iterator.details
