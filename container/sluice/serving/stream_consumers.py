"""What a request thread waits on while the delivery thread (``delivery.StreamHub``) answers it.

- ``StreamConsumer``: a streamed answer. The hub hands it each step's events; it encodes them
  with the route's protocol (``StreamEncoder``), frames them and writes them to the client's
  socket with one non-blocking send, or, without a raw socket or once a send would block, queues
  the bytes for the request thread to write. The request thread only waits for the end.
- ``Collector``: a non-streamed answer. It keeps the events; its thread is woken once, at the end.

Kept apart from the hub: these are the request side's objects (made by ``serving.service``, read by
its threads); the hub only calls their ``events``/``error``/``tick``/``flush``.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Callable, Iterator

from ..errors import ClientClosedError, IncompleteGenerationError
from ..text.events import Finish, TokenEvent
from ..wire.framing import SSE_KEEPALIVE

WAIT_SECONDS = 1.0  # a request thread's wait between checks that the hub still runs
_END = ("end", b"")


class Collector:
    """A non-streamed answer: every event of the run, handed over once, at the end."""

    def __init__(self):
        self.run: list[TokenEvent] = []
        self.outcome: Exception | None = None  # the error it ended with, or ClientClosedError
        self.finished = False
        self._done = threading.Event()

    # --- the hub's side -------------------------------------------------------------------------

    def events(self, events: list[TokenEvent], now: float) -> None:
        self.run += events
        self.finished = events[-1].finish is not None

    def error(self, error: Exception) -> None:
        self.outcome, self.finished = error, True

    def tick(self, now: float) -> bool:
        return False

    def flush(self, now: float) -> bool:
        return self.finished

    def close(self) -> None:
        self._done.set()

    # --- the request thread's side ---------------------------------------------------------------

    def wait(self, hub_alive: Callable[[], bool]) -> list[TokenEvent]:
        """The whole run; raises the error it ended with (ClientClosedError: the client left)."""
        while not self._done.wait(WAIT_SECONDS):
            if not hub_alive():
                raise IncompleteGenerationError()
        if self.outcome is not None:
            raise self.outcome
        return self.run


class StreamEncoder:
    """A streamed answer's bytes: each event as its protocol writes it, framed (SSE or NDJSON);
    after the last, the protocol's tail and ``[DONE]``; an in-band error event."""

    def __init__(self, exchange, dialect, fmt):
        self.exchange, self.dialect, self.fmt = exchange, dialect, fmt
        self.trailer = fmt.done() if dialect.closes_with_done else b""
        self.heartbeat = SSE_KEEPALIVE if fmt.is_sse else b""
        self._as_json = getattr(exchange, "encode_event_json", None)  # a protocol's fast path

    def events(self, events: list[TokenEvent]) -> bytes:
        if self._as_json is not None:
            encode, frame = self._as_json, self.fmt.frame
        else:
            encode, frame = self.exchange.encode_event, self.fmt.encode
        return b"".join([frame(payload) for event in events for payload in encode(event)])

    def tail(self) -> bytes:
        return b"".join([self.fmt.encode(payload) for payload in self.exchange.encode_tail()]) + self.trailer

    def error(self, error: Exception) -> bytes:
        return self.fmt.encode(self.dialect.encode_error(error)) + self.trailer


class StreamConsumer:
    """A streamed answer. With ``raw`` (``http.raw_body``: the WSGI server's socket, the headers
    already sent) the hub writes the body; without, or once a send would block, the request
    thread does, from what the hub queues for it."""

    def __init__(self, encoder: StreamEncoder, raw=None, keepalive_seconds: float = 15.0, keep_run: bool = False):
        self.encoder, self.raw = encoder, raw
        self.keepalive_seconds = keepalive_seconds
        self.run: list[TokenEvent] | None = [] if keep_run else None  # for the response cache
        self.finish: Finish | None = None
        self.outcome: Exception | None = None
        self.finished = False  # the last event, an error or the client's leaving has been seen
        self._direct = raw is not None
        self.handed_over = False  # a send would have blocked: the request thread writes
        self._buffer = bytearray()
        self._last_write = time.monotonic()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    # --- the hub's side -------------------------------------------------------------------------

    def events(self, events: list[TokenEvent], now: float) -> None:
        if self.run is not None:
            self.run += events
        self._buffer += self.encoder.events(events)
        finish = events[-1].finish
        if finish is not None:
            self.finish, self.finished = finish, True
            self._buffer += self.encoder.tail()

    def error(self, error: Exception) -> None:
        self.outcome, self.finished = error, True
        if not isinstance(error, ClientClosedError):
            self._buffer += self.encoder.error(error)

    def tick(self, now: float) -> bool:
        """An SSE comment after ``keepalive_seconds`` without a write (TGI's keep-alive)."""
        if self.encoder.heartbeat and not self._buffer and now - self._last_write > self.keepalive_seconds:
            self._buffer += self.encoder.heartbeat
            return True
        return False

    def flush(self, now: float) -> bool:
        """Writes, or hands over, what is ready; True once the answer is complete."""
        if self._buffer and not isinstance(self.outcome, ClientClosedError):
            data = bytes(self._buffer)
            self._last_write = now
            if self.raw is None:
                self._queue.put(("yield", data))
            elif self._direct:
                self._send(self.raw.frame(data))
            else:
                self._queue.put(("raw", self.raw.frame(data)))
        self._buffer.clear()
        return self.finished

    def _send(self, data: bytes) -> None:
        try:
            sent = self.raw.sock.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # reset or broken pipe: the client is gone
            self.outcome, self.finished = ClientClosedError(), True
            return
        self.raw.count(sent)
        if sent < len(data):  # the client reads slowly: from here its own thread writes
            self._direct = False
            self.handed_over = True
            self._queue.put(("raw", data[sent:]))

    def close(self) -> None:
        self._queue.put(_END)

    # --- the request thread's side ---------------------------------------------------------------

    def chunks(self, hub_alive: Callable[[], bool]) -> Iterator[bytes]:
        """What the request thread yields to the WSGI server (nothing while the hub writes);
        returns at the end, or raises what the answer ended with."""
        while True:
            try:
                kind, data = self._queue.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                if not hub_alive():
                    raise IncompleteGenerationError() from None
                continue
            if kind == "yield":
                yield data
            elif kind == "raw":
                self.raw.sock.sendall(data)
                self.raw.count(len(data))
            else:
                break
        if self.outcome is not None:
            self.outcome.delivered = True  # its error event is written already
            raise self.outcome
