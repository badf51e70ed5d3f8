"""Reading a request body off gunicorn's socket, whatever the client does wrong.

gunicorn hands the app a raw stream (``wsgi.input``): a chunked body has no announced length, a
short body ends quietly at EOF, bad chunk framing raises gunicorn's parse errors, and a stalled
client makes a read time out (the worker's receive timeout). Each becomes the JSON error a client
can read: 413, 400 or 408, never a 500 and never a truncated body run as if it were complete.
"""

from __future__ import annotations

from gunicorn.http.errors import NoMoreData, ParseException

from ..errors import BadRequestError, ClientClosedError, PayloadTooLargeError, RequestTimeoutError
from .gunicorn_worker import CLIENT_IDLE_TIMEOUT

# An oversized body is still read, and dropped, up to this many times the limit: a client that
# sends its whole body before reading (requests, http.client) then reads the 413 instead of a
# reset. Beyond it the 413 goes out at once and the connection closes.
DRAIN_FACTOR = 4
READ_STEP = 1024 * 1024


def read_request_body(environ, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, or a ServerError with the status to answer."""
    stream = environ["wsgi.input"]
    length = _content_length(environ)
    if length is not None and length > limit:
        if length <= DRAIN_FACTOR * limit:
            _discard(stream, length)
        raise PayloadTooLargeError(limit)
    body = _read(stream, length if length is not None else limit + 1)  # one past the limit: too large
    if len(body) > limit:
        _discard(stream, DRAIN_FACTOR * limit - len(body))
        raise PayloadTooLargeError(limit)
    if length is not None and len(body) < length:
        raise BadRequestError(f"Request body ended after {len(body)} of its {length} bytes (Content-Length)")
    return body


def _content_length(environ) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.strip() else None  # gunicorn already rejected a non-numeric value


def _read(stream, size: int) -> bytes:
    parts, received = [], 0
    while received < size:
        try:
            data = stream.read(min(READ_STEP, size - received))
        except NoMoreData:  # EOF inside chunked framing
            raise BadRequestError("Chunked request body ended before its last chunk") from None
        except ParseException as error:
            raise BadRequestError(f"Invalid chunked request body: {error}") from None
        except (BlockingIOError, TimeoutError):  # the worker's receive timeout on a stalled client
            raise RequestTimeoutError(CLIENT_IDLE_TIMEOUT) from None
        except ConnectionError:
            raise ClientClosedError() from None
        if not data:
            break
        parts.append(data)
        received += len(data)
    return b"".join(parts)


def _discard(stream, size: int) -> None:
    """Read and drop up to ``size`` bytes; any failure just ends the drain (the answer is 413 anyway)."""
    while size > 0:
        try:
            data = stream.read(min(READ_STEP, size))
        except Exception:  # noqa: BLE001 - a broken or stalled body changes nothing here
            return
        if not data:
            return
        size -= len(data)
