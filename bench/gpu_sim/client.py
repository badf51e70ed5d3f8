"""N streams at once from one thread: a client cheap enough not to be what it measures.

At 256 streams and 10 ms steps the servers should deliver 25,600 events a second on a 2-core
machine that also runs the client. A thread per stream (``bench.clients``) spends a large share
of a core in ``http.client``'s line reader and in GIL hand-offs; here one ``epoll`` loop reads
every socket as data arrives, undoes HTTP/1.1 chunked framing, splits SSE events on their blank
line, and parses only the JSON that carries something to read (the last event's token count, an
error). Every event read in one ``recv`` gets that ``recv``'s time: events a server writes
together arrive together, and the client sees them so.

One request per connection (``Connection: close``); the stream ends at the last chunk.
"""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass, field

from bench.clients import StreamTiming


@dataclass
class StreamRequest:
    path: str
    body: dict
    protocol: str  # "tgi" (Sluice's /generate_stream) or "openai" (vLLM's /v1/completions)


@dataclass
class _Stream:
    request: StreamRequest
    sock: socket.socket
    outgoing: bytes
    timing: StreamTiming
    raw: bytearray = field(default_factory=bytearray)  # bytes not yet de-chunked
    events: bytearray = field(default_factory=bytearray)  # de-chunked SSE text not yet split
    head_done: bool = False
    chunked: bool = False
    chunk_left: int = 0  # payload bytes of the current chunk still to come
    crlf_left: int = 0
    done: bool = False


def _request_bytes(host: str, port: int, request: StreamRequest) -> bytes:
    body = json.dumps(request.body).encode()
    head = (f"POST {request.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nx-use-cache: 0\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def _on_event(stream: _Stream, payload: bytes, now: float) -> None:
    if payload == b"[DONE]":
        return
    if b'"error"' not in payload:  # a key: a quote inside a JSON string is escaped
        if stream.request.protocol == "tgi" and b'"generated_text":null' in payload:
            stream.timing.event_times.append(now)  # a token event, not the last: nothing to read
            return
        if stream.request.protocol == "openai" and b'"usage":{' not in payload:
            stream.timing.event_times.append(now)
            return
    event = json.loads(payload)
    timing = stream.timing
    if "error" in event:
        timing.error = str(event.get("error"))[:200]
        return
    if stream.request.protocol == "tgi":
        timing.event_times.append(now)
        details = event.get("details")
        if details:
            timing.generated_tokens = details["generated_tokens"]
    else:
        if event.get("choices"):
            timing.event_times.append(now)
        usage = event.get("usage")
        if usage:
            timing.generated_tokens = usage["completion_tokens"]


def _split_events(stream: _Stream, now: float) -> None:
    buffer = stream.events
    start = 0
    while True:
        end = buffer.find(b"\n\n", start)
        if end < 0:
            break
        block = bytes(buffer[start:end])
        start = end + 2
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                _on_event(stream, line[5:].strip(), now)
    del buffer[:start]


def _dechunk(stream: _Stream) -> None:
    """Moves chunk payloads from ``raw`` to ``events``; marks the stream done at the last chunk."""
    raw = stream.raw
    while raw:
        if stream.crlf_left:  # the CRLF after a chunk's payload
            skip = min(stream.crlf_left, len(raw))
            del raw[:skip]
            stream.crlf_left -= skip
            continue
        if stream.chunk_left == 0:
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(raw[:line_end]).split(b";")[0], 16)
            del raw[:line_end + 2]
            if size == 0:
                stream.done = True
                return
            stream.chunk_left = size
        take = min(stream.chunk_left, len(raw))
        stream.events += raw[:take]
        del raw[:take]
        stream.chunk_left -= take
        if stream.chunk_left == 0:
            stream.crlf_left = 2


def _on_data(stream: _Stream, data: bytes, now: float) -> None:
    stream.raw += data
    if not stream.head_done:
        end = stream.raw.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(stream.raw[:end]).decode("latin-1")
        del stream.raw[:end + 4]
        stream.head_done = True
        status = int(head.split(" ", 2)[1])
        stream.chunked = "transfer-encoding: chunked" in head.lower()
        if status != 200:
            stream.timing.error = f"HTTP {status}"
    if stream.chunked:
        _dechunk(stream)
    else:
        stream.events += stream.raw
        stream.raw.clear()
    _split_events(stream, now)


def run_streams(host: str, port: int, requests: list[StreamRequest], timeout: float = 600.0) -> list[StreamTiming]:
    """Sends every request at once and reads all the streams to their end (or ``timeout``)."""
    selector = selectors.DefaultSelector()
    streams = []
    for request in requests:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sock.connect_ex((host, port))
        stream = _Stream(request, sock, _request_bytes(host, port, request), StreamTiming(sent=0.0))
        streams.append(stream)
        selector.register(sock, selectors.EVENT_WRITE, stream)
    open_count, deadline = len(streams), time.monotonic() + timeout
    while open_count and time.monotonic() < deadline:
        for key, mask in selector.select(timeout=1.0):
            stream: _Stream = key.data
            if mask & selectors.EVENT_WRITE:
                open_count -= _send(selector, stream)
                continue
            try:
                data = stream.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as error:
                data, stream.timing.error = b"", f"{type(error).__name__}: {error}"
            now = time.perf_counter()
            if data:
                _on_data(stream, data, now)
            if not data or stream.done:
                if not data and not stream.done and stream.timing.error is None:
                    stream.timing.error = "connection closed before the stream ended"
                _close(selector, stream, now)
                open_count -= 1
    now = time.perf_counter()
    for stream in streams:
        if not stream.timing.finished:
            stream.timing.error = stream.timing.error or "timed out"
            _close(selector, stream, now)
    selector.close()
    return [stream.timing for stream in streams]


def _send(selector, stream: _Stream) -> int:
    """Writes what is left of the request; returns 1 if the stream failed (and is closed)."""
    if not stream.timing.sent:
        stream.timing.sent = time.perf_counter()
    try:
        sent = stream.sock.send(stream.outgoing)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as error:
        stream.timing.error = f"{type(error).__name__}: {error}"
        _close(selector, stream, time.perf_counter())
        return 1
    stream.outgoing = stream.outgoing[sent:]
    if not stream.outgoing:
        selector.modify(stream.sock, selectors.EVENT_READ, stream)
    return 0


def _close(selector, stream: _Stream, now: float) -> None:
    stream.timing.finished = now
    try:
        selector.unregister(stream.sock)
    except (KeyError, ValueError):
        pass
    stream.sock.close()


def tgi_request(prompt_text: str, new_tokens: int) -> StreamRequest:
    return StreamRequest("/generate_stream", {"inputs": prompt_text, "stream": True,
                                              "parameters": {"max_new_tokens": new_tokens, "details": True}}, "tgi")


def openai_request(input_ids, new_tokens: int, logprobs: bool = False) -> StreamRequest:
    """vLLM's ``/v1/completions`` given token ids; ``logprobs``: each token's log-probability too
    (``logprobs: 0``: the chosen token's only, as every TGI stream event carries)."""
    body = {"prompt": list(input_ids), "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    if logprobs:
        body["logprobs"] = 0
    return StreamRequest("/v1/completions", body, "openai")


def sluice_openai_request(prompt_text: str, new_tokens: int) -> StreamRequest:
    """Sluice's ``/v1/completions``: what vLLM's server is asked, as text (Sluice tokenizes it to
    the same ids); its last chunk carries ``usage``."""
    return StreamRequest("/v1/completions", {"prompt": prompt_text, "max_tokens": new_tokens, "temperature": 0,
                                             "stream": True}, "openai")
