"""What an operator watches: health checks under slow clients, and memory the caches may hold.

SageMaker's health check gives ``/ping`` 2 s; a server that misses a few in a row is replaced.
The caches' sizes are on ``/metrics`` next to their bounds, so growth can be told apart from a
leak without a profiler.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import time

import pytest
import requests

from http_client import generate, metric, post

API_KEY = "operator-key"
STALLED_CLIENTS = 20
# Pings at this pace span the server's 5 s receive timeout and the 2 s linger that follows it,
# when all stalled clients are answered and closed at once.
PING_EVERY, PING_FOR = 0.5, 9.0


def stalled_request(port: int, authorized: bool) -> socket.socket:
    """A POST whose body stops after its first byte; the client then just holds the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    auth = f"Authorization: Bearer {API_KEY}\r\n".encode() if authorized else b""
    sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth
                 + b"Content-Length: 100\r\n\r\n{")
    return sock


def answer(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def test_every_ping_answers_within_2_s_while_20_clients_hold_half_sent_bodies(start_server):
    server = start_server(env={"API_KEY": API_KEY, "MAX_CONCURRENT_REQUESTS": "2", "RESPONSE_CACHE_SIZE": "0"})
    # Half of them are refused before their body is read (no key), half wait for it (key).
    stalled = [stalled_request(server.port, authorized=i % 2 == 0) for i in range(STALLED_CLIENTS)]
    try:
        statuses = []
        deadline = time.monotonic() + PING_FOR
        while time.monotonic() < deadline:
            try:
                statuses.append(requests.get(server.url + "/ping", timeout=2).status_code)
            except requests.RequestException as error:
                statuses.append(type(error).__name__)
            time.sleep(PING_EVERY)
        assert statuses == [200] * len(statuses)
        answers = [answer(sock) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    timed_out = (408, {"error": "Request body not received: no data for 5 s", "error_type": "request_timeout"})
    assert answers[0::2] == [timed_out] * (STALLED_CLIENTS // 2)
    assert {status for status, _ in answers[1::2]} == {401}



def test_connections_that_send_nothing_hold_no_thread_a_ping_needs(start_server):
    """Found by an on-call probe: gunicorn gives every new connection a thread that waits up to
    5 s for its first bytes, so 100 clients that connected and sent nothing (a port scan, a
    load balancer's pre-opened connections) took every one of the 80 threads of a worker with
    MAX_CONCURRENT_REQUESTS=16 and held a ping for 4.8 s, past SageMaker's 2 s."""
    server = start_server(env={"MAX_CONCURRENT_REQUESTS": "16", "RESPONSE_CACHE_SIZE": "0"})
    threads = 16 + 16 + 48  # gunicorn_conf: MAX_CONCURRENT_REQUESTS + health + slow clients
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(threads + 40)]
    try:
        waits = []
        for _ in range(4):
            started = time.monotonic()
            assert requests.get(server.url + "/ping", timeout=10).status_code == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.25)
        assert max(waits) < 2, waits
        assert generate(server.url, "Hi", path="/generate", max_new_tokens=4)["generated_text"]
        # a silent connection is still served when its request comes at last
        late = silent[0]
        late.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        response = http.client.HTTPResponse(late)
        response.begin()
        assert response.status == 200
    finally:
        for sock in silent:
            sock.close()


def kv_bytes_per_token(model_dir) -> int:
    """One token's keys and values over all layers, in float32 (the suite's DTYPE)."""
    config = json.loads((model_dir / "config.json").read_text())
    heads = config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * heads * head_dim * 4


def cache_gauges(url: str) -> dict[str, float]:
    names = ("entries", "tokens", "bytes", "capacity_tokens")
    values = {f"prefix_{name}": metric(url, f"sluice_prefix_cache_{name}") for name in names}
    values.update({f"response_{name}": metric(url, f"sluice_response_cache_{name}")
                   for name in ("entries", "bytes", "capacity_entries")})
    return values


def distinct_prompt(i: int) -> str:
    return f"Request {i}: " + " ".join(f"word{i}x{j}" for j in range(24))  # well over two 16-token blocks


def test_cache_gauges_report_what_the_caches_hold_and_stay_within_their_bounds(start_server, tiny_model_dir):
    """A 2,048-token KV budget gives the prefix cache 256 tokens; 4 answers for the response
    cache. Twenty distinct prompts overflow both; each gauge stays at or under its bound, and the
    prefix cache's bytes are exactly its tokens' keys and values."""
    server = start_server(env={"MAX_BATCH_TOTAL_TOKENS": "2048", "RESPONSE_CACHE_SIZE": "4"})
    assert cache_gauges(server.url) == {"prefix_entries": 0, "prefix_tokens": 0, "prefix_bytes": 0,
                                        "prefix_capacity_tokens": 256, "response_entries": 0,
                                        "response_bytes": 0, "response_capacity_entries": 4}
    peak_tokens = 0
    for i in range(20):
        generate(server.url, distinct_prompt(i), path="/generate", max_new_tokens=3)
        gauges = cache_gauges(server.url)
        assert 0 < gauges["prefix_tokens"] <= gauges["prefix_capacity_tokens"] == 256
        assert gauges["prefix_bytes"] == gauges["prefix_tokens"] * kv_bytes_per_token(tiny_model_dir)
        assert 0 < gauges["response_entries"] <= gauges["response_capacity_entries"] == 4
        assert gauges["response_bytes"] > 0
        peak_tokens = max(peak_tokens, gauges["prefix_tokens"])
    # Full, with the least recently used entries evicted to make room: a bound, not a stop.
    assert peak_tokens > 256 - 64 and gauges["prefix_entries"] >= 2 and gauges["response_entries"] == 4
    assert metric(server.url, "sluice_prefix_cache_hits") == 0  # every prompt was new

    bytes_for_four = gauges["response_bytes"]
    post(server.url, {"inputs": distinct_prompt(99), "parameters": {"max_new_tokens": 60}}, path="/generate")
    assert metric(server.url, "sluice_response_cache_bytes") > bytes_for_four  # a longer answer in, a short one out



def test_access_lines_are_written_only_when_asked_for(start_server):
    """``SLUICE_ACCESS_LOG=1`` gives one line per request with its path and status; by default
    there are none (SageMaker pings every few seconds)."""
    quiet, loud = start_server(), start_server({"SLUICE_ACCESS_LOG": "1"})
    for process in (quiet, loud):
        assert requests.get(process.url + "/ping", timeout=10).status_code == 200
        generate(process.url, "access", max_new_tokens=2)
    deadline = time.monotonic() + 10
    while '"POST /invocations HTTP/1.1" 200' not in loud.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert '"GET /ping HTTP/1.1" 200' in loud.log_text()
    assert '"POST /invocations HTTP/1.1" 200' in loud.log_text()
    assert "/invocations HTTP/1.1" not in quiet.log_text() and "/ping HTTP/1.1" not in quiet.log_text()


def test_every_worker_thread_exists_before_the_first_request(start_server):
    """A first burst finds all of the worker's threads started (``MAX_CONCURRENT_REQUESTS`` + 16
    for health checks + 48 for slow clients): gunicorn's loop never waits on a new thread while
    connections queue."""
    process = start_server({"MAX_CONCURRENT_REQUESTS": "40"})
    worker = re.search(r"Booting worker with pid: (\d+)", process.log_text())
    assert worker is not None, process.log_tail()
    tasks = f"/proc/{worker.group(1)}/task"
    if not os.path.isdir(tasks):
        pytest.skip("counting a process's threads needs Linux's /proc")
    assert len(os.listdir(tasks)) >= 40 + 16 + 48
