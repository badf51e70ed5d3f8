"""Stopping the real server: SIGTERM (SageMaker, docker stop) and Ctrl-C, with streams in flight.

Every stop must end each open stream with its final event or the in-band ``shutting_down`` error
(never a cut body), exit 0, and leave no line of a killed, aborted or crashed process in the log:
what an operator would otherwise see on every scale-in. Ctrl-C is sent as the terminal sends it,
to the server's whole process group (the arbiter and its worker).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time

import pytest
import requests

from deploy.local import ContainerProcess
from http_client import metric, wait_for
from local_processes import VLLM_BIN, VLLM_START_SECONDS

SHUTTING_DOWN = {"error": "Server is shutting down", "error_type": "shutting_down"}
# What gunicorn and the C++ runtime print when a worker is killed, aborts or dies with a traceback.
UNCLEAN = re.compile(r"SIGKILL|SIGABRT|terminate called|Traceback|Exception ignored")
CTRL_C_EXIT_SECONDS = 3  # the server is gone this soon after Ctrl-C, whatever its graceful window


def assert_clean_exit(server: ContainerProcess, timeout: float) -> None:
    assert server.proc.wait(timeout=timeout) == 0, server.log_tail()
    unclean = [line for line in server.log_text().splitlines() if UNCLEAN.search(line)]
    assert unclean == [], server.log_tail()


def open_streams(server: ContainerProcess, count: int, max_new_tokens: int, details: bool = False) -> list:
    """``count`` TGI streams, each past its first event (so generating) before this returns."""
    streams = []
    for _ in range(count):
        response = requests.post(server.url + "/generate_stream", stream=True, timeout=60, json={
            "inputs": "Hello", "parameters": {"max_new_tokens": max_new_tokens, "details": details}})
        lines = response.iter_lines()
        assert next(lines).startswith(b"data:")
        streams.append(lines)
    return streams


def last_event(lines) -> dict:
    """The last event of a stream read to its end (requests raises on a cut chunked body)."""
    return [json.loads(line[len(b"data:"):]) for line in lines if line][-1]


def refuses_connections(port: int) -> bool:
    """True once the listening socket is closed. A connection that races the close can be reset
    instead of refused (it reached the backlog of a socket being closed); that says nothing yet, so
    the caller asks again."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    return False


def ctrl_c(server: ContainerProcess) -> None:
    os.killpg(server.proc.pid, signal.SIGINT)


# --- SIGTERM ------------------------------------------------------------------------------------

DRAINED_STREAMS, DRAINED_TOKENS = 4, 60  # still generating at SIGTERM; well within the 25 s drain on a loaded machine


def test_after_sigterm_new_requests_are_refused_at_once_while_streams_finish(start_server):
    server = start_server()
    kept_alive = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    kept_alive.request("GET", "/ping")
    assert kept_alive.getresponse().read() == b""
    streams = open_streams(server, DRAINED_STREAMS, DRAINED_TOKENS, details=True)
    # All four are generating when SIGTERM comes. The gauge is written by the engine thread just
    # after a newcomer's first token is published, so wait for it rather than read it once.
    wait_for(lambda: metric(server.url, "tgi_batch_current_size") == DRAINED_STREAMS,
             "all four streams in the batch", timeout=10)

    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(server.port), "new connections are refused", timeout=10)
    kept_alive.request("GET", "/ping")
    response = kept_alive.getresponse()
    assert (response.status, json.loads(response.read())) == (503, SHUTTING_DOWN)

    for lines in streams:
        last = last_event(lines)
        assert (last["details"]["finish_reason"], last["details"]["generated_tokens"]) == ("length", DRAINED_TOKENS)
    assert_clean_exit(server, timeout=30)


def test_a_stream_still_running_as_the_graceful_window_ends_gets_an_in_band_error(start_server):
    """gunicorn exits the worker when its graceful window ends; a stream it would cut mid-body
    gets the reason in-band first, and the worker exits by itself before the arbiter would kill
    it. A 4 s window here (25 s in production) ends the clock 2 s after SIGTERM, long before four
    2,000-token streams could finish."""
    server = start_server(env={"GUNICORN_CMD_ARGS": "--graceful-timeout 4"})
    streams = open_streams(server, 4, 2000)
    server.proc.send_signal(signal.SIGTERM)
    for lines in streams:
        data = [json.loads(line[len(b"data:"):]) for line in lines if line]
        assert data[-1] == SHUTTING_DOWN
        assert all(event["generated_text"] is None for event in data[:-1])  # cut short, not finished
    assert_clean_exit(server, timeout=30)


# --- Ctrl-C -------------------------------------------------------------------------------------

def test_ctrl_c_ends_streams_in_band_and_the_server_is_gone_within_3_s(start_server):
    """With the production 25 s graceful window: Ctrl-C does not wait for it."""
    server = start_server()
    streams = open_streams(server, 3, 2000)
    ctrl_c(server)
    started = time.monotonic()
    for lines in streams:
        assert last_event(lines) == SHUTTING_DOWN
    assert_clean_exit(server, timeout=CTRL_C_EXIT_SECONDS - (time.monotonic() - started))


def test_a_second_ctrl_c_exits_at_once(start_server):
    """A client still sending its body keeps the first Ctrl-C's drain open (up to a second); the
    second Ctrl-C ends the worker at once, still with status 0 and no traceback."""
    server = start_server()
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stalled.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n{")
    try:
        # The worker accepts in order: once a later ping is answered, the stalled connection
        # holds a worker thread (reading its body, for up to 5 s).
        assert requests.get(server.url + "/ping", timeout=5).status_code == 200
        ctrl_c(server)
        wait_for(lambda: refuses_connections(server.port), "the first Ctrl-C was handled", timeout=5)
        ctrl_c(server)
        assert_clean_exit(server, timeout=CTRL_C_EXIT_SECONDS)
    finally:
        stalled.close()
    assert re.search(r"Worker exiting \(pid: \d+\) at once: second SIGINT", server.log_text()), server.log_tail()


def test_sigterm_then_ctrl_c_ends_the_drain_at_once(start_server):
    """An operator tired of waiting for the drain presses Ctrl-C: streams end in-band and the
    server goes before the arbiter's 2 s quick-shutdown limit would kill the worker."""
    server = start_server()
    streams = open_streams(server, 2, 2000)
    server.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: refuses_connections(server.port), "the drain has begun", timeout=10)
    ctrl_c(server)
    for lines in streams:
        assert last_event(lines) == SHUTTING_DOWN
    assert_clean_exit(server, timeout=CTRL_C_EXIT_SECONDS)


# --- the vLLM engine ----------------------------------------------------------------------------

@pytest.mark.skipif(not (VLLM_BIN / "python").exists(), reason="the vLLM engine needs .venv-vllm (make install-vllm)")
def test_the_vllm_engine_stops_cleanly_on_sigterm_with_a_stream_in_flight(tiny_model_dir):
    """vLLM keeps threads and an engine core of its own: the same clean end on that engine."""
    env = {"SLUICE_ENGINE": "vllm", "DTYPE": "auto", "MAX_CONCURRENT_REQUESTS": "4", "RESPONSE_CACHE_SIZE": "0",
           "SLUICE_TORCH_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "GUNICORN_CMD_ARGS": "--graceful-timeout 4"}
    server = ContainerProcess(tiny_model_dir, env=env, bin_dir=VLLM_BIN).start()
    try:
        server.wait_ready(timeout=VLLM_START_SECONDS)
        streams = open_streams(server, 2, 2000)
        server.proc.send_signal(signal.SIGTERM)
        for lines in streams:
            assert last_event(lines) == SHUTTING_DOWN
        assert_clean_exit(server, timeout=30)
    finally:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()

