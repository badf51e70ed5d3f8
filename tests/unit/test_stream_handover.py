"""A streamed body written by the delivery thread (``serving.delivery``) straight to the socket,
and handed to the request's own thread when a client reads too slowly for a non-blocking write:
whoever writes, the client reads every byte, in whole chunks."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

from sluice.http.raw_body import RawBody
from sluice.protocols.tgi.dialect import TgiDialect
from sluice.request import RequestLimits
from sluice.serving.exchange import ParseContext
from sluice.serving.stream_consumers import StreamConsumer, StreamEncoder
from sluice.text.events import Finish, Token, TokenEvent
from sluice.wire.framing import SSE

CONTEXT = ParseContext(RequestLimits(4, 5, 2), None, "model", "cpu")
TOKENS = 400


def tgi_encoder() -> StreamEncoder:
    dialect = TgiDialect(stream=True, compat=False)
    exchange = dialect.parse({"inputs": "Hi", "parameters": {"max_new_tokens": TOKENS, "details": True}}, CONTEXT)
    return StreamEncoder(exchange, dialect, SSE)


def events() -> list[TokenEvent]:
    run = [TokenEvent(i, Token(i, f" token{i}" * 20, -0.5, False), ()) for i in range(1, TOKENS)]
    return run + [TokenEvent(TOKENS, Token(TOKENS, " end", -0.5, False), (),
                             Finish("...", "length", TOKENS, None, 2, (), 0.0, 0.0))]


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def dechunk(data: bytes) -> bytes:
    """The body of HTTP/1.1 chunks (without the last, which gunicorn writes): whole chunks only."""
    body = b""
    while data:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        assert data[size:size + 2] == b"\r\n", "a chunk was cut"
        body, data = body + data[:size], data[size + 2:]
    return body


def test_a_write_that_would_block_hands_the_rest_to_the_request_thread():
    """Buffers of 4 KiB and a reader that has not started: the delivery thread's non-blocking
    write stops part-way (inside a chunk), the rest goes to the request thread, which writes it
    blocking; the reader gets every byte, and gunicorn's byte count agrees."""
    writer, reader = socket.socketpair()
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    response = SimpleNamespace(chunked=True, sent=0)
    consumer = StreamConsumer(tgi_encoder(), RawBody(writer, response))
    run = events()
    for start in range(0, TOKENS, 50):  # eight steps' worth, one write each
        consumer.events(run[start:start + 50], 0.0)
        consumer.flush(0.0)
    consumer.close()
    assert consumer.handed_over and consumer.finished
    received = []
    drain = threading.Thread(target=lambda: received.append(read_all(reader)))
    drain.start()
    assert list(consumer.chunks(lambda: True)) == []  # written to the socket, nothing yielded
    writer.close()
    drain.join()
    assert dechunk(received[0]) == tgi_encoder().events(run)
    assert response.sent == len(received[0])


def test_without_a_raw_socket_the_request_thread_yields_one_chunk_per_step():
    consumer = StreamConsumer(tgi_encoder())
    run = events()
    for start in range(0, TOKENS, 100):
        consumer.events(run[start:start + 100], 0.0)
        consumer.flush(0.0)
    consumer.close()
    chunks = list(consumer.chunks(lambda: True))
    assert len(chunks) == 4
    assert b"".join(chunks) == tgi_encoder().events(run)
