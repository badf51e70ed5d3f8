"""Small HTTP helpers for tests: JSON posts and raw SSE reads against a real server."""

from __future__ import annotations

import json
import socket
import time

import requests


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, which are not JSON (serde_json and browsers refuse them)."""
    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def post(url: str, body, path: str = "/invocations", **kwargs) -> requests.Response:
    return requests.post(url + path, json=body, timeout=60, **kwargs)


def generate(url: str, inputs: str, path: str = "/invocations", **parameters):
    response = post(url, {"inputs": inputs, "parameters": parameters}, path=path)
    assert response.status_code == 200, response.text
    return response.json()


def stream_raw(url: str, body, path: str = "/invocations",
               headers: dict | None = None) -> tuple[requests.Response, bytes]:
    response = requests.post(url + path, json=body, stream=True, timeout=60, headers=headers)
    chunks = b"".join(response.iter_content(chunk_size=None))
    return response, chunks


def sse_events(raw: bytes) -> list[dict]:
    """Parse a byte-exact TGI SSE stream: `data: {json}\\n\\n` events, and the `:\\n\\n` keep-alive
    TGI sends while a slow engine has nothing to say; anything else fails."""
    assert raw.endswith(b"\n\n"), raw[-50:]
    events = []
    for block in raw[:-2].split(b"\n\n"):
        if block == b":":
            continue
        assert block.startswith(b"data: "), block[:80]
        events.append(json.loads(block[len(b"data: "):]))
    return events


def stream_events(url: str, inputs: str, path: str = "/invocations", **parameters) -> list[dict]:
    response, raw = stream_raw(url, {"inputs": inputs, "parameters": parameters, "stream": True}, path=path)
    assert response.status_code == 200
    return sse_events(raw)


def metric(url: str, name: str) -> float:
    """One unlabelled sample of the server's ``/metrics``."""
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def wait_for(condition, what: str, timeout: float = 60, detail=lambda: "") -> None:
    """Poll ``condition`` until it holds: tests wait for a state the server reports, not for a
    guessed number of seconds. ``timeout`` only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}\n{detail()}"
        time.sleep(0.02)


def send_raw(url: str, path: str, body: dict) -> socket.socket:
    """A JSON POST written on a raw socket left open: the caller decides when the client hangs up."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
                 + b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock


def hang_up_and_wait_for_log(server, line: str, timeout: float = 10) -> None:
    """Start a long stream on ``server`` (a ``ContainerProcess``), hang up after its first event,
    and wait until the server's log has one more ``line`` (what it logs when it gives the request up)."""
    before = server.log_text().count(line)
    open_stream_and_hang_up(server.url)
    wait_for(lambda: server.log_text().count(line) > before, f"the server logged {line!r}", timeout,
             server.log_tail)


def open_stream_and_hang_up(url: str, max_new_tokens: int = 1500) -> None:
    """Start a long stream, read until its first event, then close the connection."""
    body = {"inputs": "Tell me a long story", "stream": True, "parameters": {"max_new_tokens": max_new_tokens}}
    with send_raw(url, "/invocations", body) as sock:
        received = b""
        while b"data: " not in received:
            received += sock.recv(4096)
