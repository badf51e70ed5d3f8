"""Hostile transport through the real server: every answer is a readable JSON error, nothing hangs.

Raw sockets, http.client and requests, as a broken or malicious client would use them: bad
framing, oversized URLs, headers and bodies, short bodies and stalled bodies. What gunicorn
answers before the app sees the request is JSON too. (Requests arriving after SIGTERM:
test_shutdown.py. The answers to malformed requests, bad chunks, short bodies and 100-continue
over the limit, with who answers them and whether the connection closes: test_error_table.)
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest
import requests

from deploy.local import ContainerProcess

MiB = 1024 * 1024
LIMIT = 6 * MiB
TOO_LARGE = {"error": f"Failed to buffer the request body: length limit exceeded ({LIMIT} bytes)",
             "error_type": "payload_too_large"}
JSON = b"Content-Type: application/json\r\n"


@pytest.fixture(scope="module")
def hostile_server(tiny_model_dir):
    """Two slots only, as in the slow-client report: health must not depend on spare slots."""
    with ContainerProcess(tiny_model_dir, env={"MAX_CONCURRENT_REQUESTS": "2", "RESPONSE_CACHE_SIZE": "0"}) as process:
        yield process


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def read_response(sock: socket.socket) -> tuple[int, str, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.getheader("Content-Type"), json.loads(response.read())


def exchange(server, request: bytes) -> tuple[int, str, dict]:
    with connect(server) as sock:
        sock.sendall(request)
        return read_response(sock)


def json_body(size: int) -> bytes:
    return b'{"inputs": "' + b"a" * (size - 14) + b'"}'


def in_chunks(data: bytes, step: int = 64 * 1024):
    for start in range(0, len(data), step):
        yield data[start:start + step]


GUNICORN_REJECTS = [
    ("9000-byte header", b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431,
     {"error": "Request Header Fields Too Large: limit request headers fields size",
      "error_type": "headers_too_large"}),
    ("control character in a header", b"GET /ping HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400,
     {"error": "Bad Request: Invalid HTTP Header: 'X-A'", "error_type": "bad_request"}),
    ("content-length and chunked", b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + JSON
     + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     {"error": "Bad Request: Invalid HTTP Header: 'CONTENT-LENGTH'", "error_type": "bad_request"}),
]


@pytest.mark.parametrize("name, request_bytes, status, body", GUNICORN_REJECTS, ids=[r[0] for r in GUNICORN_REJECTS])
def test_what_gunicorn_rejects_is_answered_in_json(hostile_server, name, request_bytes, status, body):
    assert exchange(hostile_server, request_bytes) == (status, "application/json", body)


@pytest.mark.parametrize("size", [7 * MiB, 10 * MiB], ids=["7MiB", "10MiB"])
def test_a_chunked_body_over_the_limit_is_413(hostile_server, size):
    response = requests.post(hostile_server.url + "/invocations", data=in_chunks(json_body(size)),
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert (response.status_code, response.json()) == (413, TOO_LARGE)


def test_a_7_mib_body_gets_a_413_that_requests_can_read(hostile_server):
    response = requests.post(hostile_server.url + "/invocations", data=json_body(7 * MiB),
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert (response.status_code, response.json()) == (413, TOO_LARGE)


def test_a_7_mib_body_gets_a_413_that_http_client_can_read(hostile_server):
    connection = http.client.HTTPConnection("127.0.0.1", hostile_server.port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=json_body(7 * MiB),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (413, TOO_LARGE)
    finally:
        connection.close()


def stalled_bodies(server, path: str, count: int) -> list[socket.socket]:
    """``count`` POSTs whose 100-byte body stops after its first byte; the clients hold them."""
    socks = []
    for _ in range(count):
        sock = connect(server)
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + JSON + b"Content-Length: 100\r\n\r\n{")
        socks.append(sock)
    return socks


def test_stalled_bodies_never_starve_health_checks_and_end_in_408(hostile_server):
    stalled = []
    try:
        stalled += stalled_bodies(hostile_server, "/invocations", 20)
        answered = 0
        for _ in range(3):  # SageMaker's health-check budget is 2 s per ping
            try:
                answered += requests.get(hostile_server.url + "/ping", timeout=2).status_code == 200
            except requests.RequestException:
                pass
        assert answered == 3
        timed_out = (408, "application/json",
                     {"error": "Request body not received: no data for 5 s", "error_type": "request_timeout"})
        assert [read_response(sock) for sock in stalled] == [timed_out] * len(stalled)
    finally:
        for sock in stalled:
            sock.close()


def test_clients_stalled_mid_body_hold_no_admission_turn(hostile_server):
    """More clients stalled half-way through a generation body than there are admission turns
    (``serving.admission``): a whole request sent meanwhile is answered at once, not after their
    5 s receive timeout ends them."""
    stalled = []
    try:
        stalled += stalled_bodies(hostile_server, "/generate", 4)
        answer = requests.post(hostile_server.url + "/generate", timeout=3.5,
                               json={"inputs": "whole", "parameters": {"max_new_tokens": 2}})
        assert answer.status_code == 200 and "generated_text" in answer.json()
    finally:
        for sock in stalled:
            sock.close()


def test_the_control_socket_is_disabled(start_server, tmp_path):
    """gunicorn would listen on $XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl: one path
    shared by every server of the user. (It logs nothing at info level when it does.)"""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    server = start_server(env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
    assert list(runtime.iterdir()) == [] and not (home / ".gunicorn").exists()

