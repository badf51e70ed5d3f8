"""Streamed bytes written by the delivery thread straight to gunicorn's socket, one write per
stream per step: the client reads them framed as gunicorn frames them (chunked for HTTP/1.1, raw
for HTTP/1.0), and a keep-alive connection stays usable after the stream."""

from __future__ import annotations

import json
import socket

from http_client import generate, sse_events

PROMPT = "How do I make cheese?"


def raw_request(port: int, body: dict, version: str = "1.1", receive_buffer: int | None = None,
                keep_alive: bool = False) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    payload = json.dumps(body).encode()
    connection = "keep-alive" if keep_alive else "close"
    sock.sendall(f"POST /generate_stream HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Connection: {connection}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return sock


def read_response(sock: socket.socket) -> tuple[str, bytes]:
    """Head and body of one response; a chunked body is undone (and must end with its last chunk)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    head = head.decode("latin-1")
    if "transfer-encoding: chunked" not in head.lower():
        while chunk := sock.recv(65536):
            rest += chunk
        return head, rest
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            more = sock.recv(65536)
            assert more, "the connection closed inside a chunk"
            rest += more
        if size == 0:
            return head, body
        body, rest = body + rest[:size], rest[size + 2:]


def streamed_text(body: bytes) -> tuple[str, dict]:
    events = sse_events(body)
    return "".join(e["token"]["text"] for e in events), events[-1]


def test_an_http_1_0_client_gets_a_raw_body_ended_by_the_close(start_server):
    server = start_server({"RESPONSE_CACHE_SIZE": "0"})
    expected = generate(server.url, PROMPT, path="/generate", max_new_tokens=40)["generated_text"]
    with raw_request(server.port, {"inputs": PROMPT, "parameters": {"max_new_tokens": 40}}, version="1.0") as sock:
        head, body = read_response(sock)
    assert head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), head
    assert "chunked" not in head.lower()
    assert streamed_text(body)[0] == expected


def test_a_keep_alive_connection_serves_the_next_request_after_a_stream(start_server):
    """The delivery thread writes the body, gunicorn the last chunk: the connection is left
    exactly at the end of the response, ready for the next one."""
    server = start_server({"RESPONSE_CACHE_SIZE": "0"})
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 30}}
    sock = raw_request(server.port, body, keep_alive=True)
    with sock:
        first = read_response(sock)[1]
        payload = json.dumps(body).encode()
        sock.sendall(b"POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        second = read_response(sock)[1]
    assert streamed_text(first)[0] == streamed_text(second)[0]
