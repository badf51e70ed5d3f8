"""The error table of docs/http-api.md is what the server answers.

Every status/`error_type` the code can answer is a row of the table, and every row is one the code
answers; the "answered by" column is checked through the real process: the gunicorn worker's
answers carry `Connection: close` and no `Server` header and close the connection, the app's carry
gunicorn's `Server` header. A body the app could not read to its end closes the connection too, so
a request smuggled after a broken body never runs.
"""

from __future__ import annotations

import http.client
import inspect
import json
import re
import socket
from pathlib import Path

import pytest

from deploy.local import ContainerProcess
from sluice import errors

HTTP_API = (Path(__file__).resolve().parents[2] / "docs" / "http-api.md").read_text(encoding="utf-8")
JSON = b"Content-Type: application/json\r\n"
SMUGGLED = (b"POST /generate HTTP/1.1\r\nHost: x\r\n" + JSON + b"Content-Length: 48\r\n\r\n"
            b'{"inputs":"x","parameters":{"max_new_tokens":2}}')


def error_table() -> list[tuple[list[int], list[str], list[str]]]:
    """(statuses, error types, who answers) of each row of the docs' error table."""
    start = HTTP_API.index("## Errors")
    end = HTTP_API.find("\n## ", start + 1)
    section = HTTP_API[start:end if end != -1 else len(HTTP_API)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d{3}( / \d{3})?", cells[0]):
            rows.append(([int(s) for s in cells[0].split(" / ")], re.findall(r"`([^`]+)`", cells[1]),
                         [w.strip() for w in cells[2].split("/")]))
    return rows


def answered_errors() -> set[tuple[int, str]]:
    """(status, error_type) of every error class the server can send (499: nobody is there to read it)."""
    found = set()
    for _, kind in inspect.getmembers(errors, inspect.isclass):
        if issubclass(kind, errors.ServerError) and kind is not errors.ServerError and kind.status != 499:
            found.add((kind.status, kind.error_type))
    return found


def test_the_error_table_lists_exactly_the_errors_the_code_answers():
    listed = set()
    for statuses, types, who in error_table():
        assert set(who) <= {"app", "worker"}, who
        # "404 / 405 | a / b" pairs status and type; "422 | a / b" gives one status several types
        pairs = zip(statuses, types, strict=True) if len(statuses) > 1 else ((statuses[0], t) for t in types)
        listed.update(pairs)
    assert listed == answered_errors()


def table_says(status: int, error_type: str) -> set[str]:
    return {w for statuses, types, who in error_table() if status in statuses and error_type in types for w in who}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with ContainerProcess(tiny_model_dir, env={"RESPONSE_CACHE_SIZE": "0"}) as process:
        yield process


def exchange(server, request: bytes, half_close: bool = False):
    """One raw request: the response, its JSON body, and what followed it before the close."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    with sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        after = b""
        while chunk := sock.recv(65536):  # EOF: the server closed the connection
            after += chunk
    return response, json.loads(body), after


WORKER_ANSWERS = [
    ("bad header name", b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400,
     {"error": "Bad Request: Invalid HTTP header name: 'Bad Name'", "error_type": "bad_request"}),
    ("bad HTTP version", b"GET /ping HTTP/9.9\r\nHost: x\r\n\r\n", 400,
     {"error": "Bad Request: Invalid HTTP Version: (9, 9)", "error_type": "bad_request"}),
    ("5000-byte url", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
     {"error": "Request-URI Too Long: Request Line is too large (5014 > 4094)", "error_type": "uri_too_long"}),
    ("101 headers", b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n",
     431, {"error": "Request Header Fields Too Large: limit request headers fields",
           "error_type": "headers_too_large"}),
    ("unknown expectation",
     b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON + b"Content-Length: 2\r\nExpect: foo\r\n\r\n{}",
     417, {"error": "Expectation Failed: Unable to comply with expectation: 'foo'",
           "error_type": "expectation_failed"}),
    ("unknown transfer coding", b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON + b"Transfer-Encoding: br\r\n\r\n",
     501, {"error": "Not Implemented: Unsupported transfer coding: 'br'", "error_type": "not_implemented"}),
    ("expect 100-continue over the limit", b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON
     + b"Content-Length: 7340032\r\nExpect: 100-continue\r\n\r\n", 413,
     {"error": "Failed to buffer the request body: length limit exceeded (6291456 bytes)",
      "error_type": "payload_too_large"}),
]


@pytest.mark.parametrize("name, request_bytes, status, body", WORKER_ANSWERS, ids=[w[0] for w in WORKER_ANSWERS])
def test_what_the_worker_answers_is_json_and_closes_the_connection(server, name, request_bytes, status, body):
    response, answer, after = exchange(server, request_bytes + SMUGGLED)
    assert (response.status, answer) == (status, body)
    assert response.getheader("Connection") == "close" and response.getheader("Server") is None
    assert after == b""  # the request behind it was never run
    assert "worker" in table_says(status, body["error_type"])


APP_CLOSES = [
    ("bad chunk size",
     b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
     400, {"error": "Invalid chunked request body: Invalid chunk size: b'zz'", "error_type": "bad_request"}),
]


@pytest.mark.parametrize("name, request_bytes, status, body", APP_CLOSES, ids=[a[0] for a in APP_CLOSES])
def test_a_body_the_app_cannot_read_is_answered_by_the_app_and_nothing_after_it_runs(server, name, request_bytes,
                                                                                     status, body):
    response, answer, after = exchange(server, request_bytes + SMUGGLED)
    assert (response.status, answer) == (status, body)
    assert response.getheader("Server") == "gunicorn"
    assert after == b""  # the smuggled /generate got no answer: the connection closed
    assert "app" in table_says(status, body["error_type"])


def test_a_short_body_is_answered_by_the_app_and_the_connection_closes(server):
    body = b'{"inputs": "hi"}'
    request = b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON + b"Content-Length: 100\r\n\r\n" + body
    response, answer, after = exchange(server, request, half_close=True)
    assert (response.status, answer) == (400, {
        "error": f"Request body ended after {len(body)} of its 100 bytes (Content-Length)",
        "error_type": "bad_request"})
    assert response.getheader("Server") == "gunicorn" and after == b""


def test_a_stalled_body_is_a_408_from_the_app_and_the_connection_closes(server):
    request = b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON + b"Content-Length: 100\r\n\r\n{"
    response, answer, after = exchange(server, request)
    assert (response.status, answer) == (408, {"error": "Request body not received: no data for 5 s",
                                               "error_type": "request_timeout"})
    assert response.getheader("Server") == "gunicorn" and after == b""
    assert table_says(408, "request_timeout") == {"app"}


def test_a_stalled_header_block_is_closed_without_an_answer(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # no blank line: the headers never end
        assert sock.recv(65536) == b""


def test_what_the_app_answers_keeps_a_sound_connection_open(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/nope")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (
            404, {"error": "Route GET /nope not found", "error_type": "not_found"})
        assert response.getheader("Server") == "gunicorn"
        assert table_says(404, "not_found") == {"app"}
        connection.request("GET", "/ping")  # the same connection serves the next request
        assert connection.getresponse().status == 200
    finally:
        connection.close()
