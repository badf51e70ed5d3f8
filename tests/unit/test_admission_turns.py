"""Admission turns: a burst's requests are admitted a few at a time, and a whole request may hold
one turn from its first byte to the engine's hand-over (``serving.admission``,
``http.whole_request``)."""

from __future__ import annotations

import socket
import threading
import time

from sluice.http.whole_request import is_whole_generation_request, request_arrival, whole_generation_request
from sluice.serving.admission import Turns

BODY = b'{"inputs":"hi","parameters":{"max_new_tokens":4}}'


def request(path: str = "/generate_stream", method: str = "POST", body: bytes = BODY, extra: bytes = b"") -> bytes:
    return (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_a_held_turn_is_not_taken_twice_and_with_blocks_inside_it_cost_no_slot():
    turns = Turns(1)
    assert turns.take() is True
    with turns:  # a second slot would deadlock with one slot
        with turns:
            assert turns.holding()
    assert turns.holding()  # the outer turn outlives the blocks inside it
    turns.give()
    assert not turns.holding()
    turns.give()  # giving none back is harmless
    with turns:
        assert turns.holding()
    assert not turns.holding()


def test_a_turn_given_back_inside_a_with_block_is_not_given_twice():
    turns = Turns(1)
    with turns:
        turns.give()
        assert not turns.holding()
    other = []
    thread = threading.Thread(target=lambda: other.append(turns.take()))
    thread.start()
    thread.join(timeout=5)
    assert other == [True]  # the one slot is free: it was released exactly once


def test_turns_admit_at_most_their_slots_at_once():
    turns, inside, peak, lock = Turns(2), [0], [0], threading.Lock()

    def work():
        with turns:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peak[0] == 2


def test_whole_requests_to_generation_routes_are_recognised():
    for path in ("/generate_stream", "/generate", "/invocations", "/v1/chat/completions", "/v1/completions", "/",
                 "/invocations?x=1"):
        assert is_whole_generation_request(request(path)), path


def test_anything_still_arriving_or_not_a_generation_is_not():
    whole = request()
    assert not is_whole_generation_request(whole[:-1])  # the body's last byte is still on its way
    assert not is_whole_generation_request(whole[:whole.find(b"\r\n\r\n")])  # the head is not complete
    assert not is_whole_generation_request(request("/adapters"))  # registering reads weights
    assert not is_whole_generation_request(request("/ping", method="GET", body=b""))
    assert not is_whole_generation_request(request(extra=b"Expect: 100-continue\r\n"))
    chunked = (b"POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + hex(len(BODY))[2:].encode() + b"\r\n" + BODY + b"\r\n0\r\n\r\n")
    assert not is_whole_generation_request(chunked)
    assert not is_whole_generation_request(request(extra=b"Content-Length: 3\r\n"))  # two lengths: gunicorn's 400


def test_the_socket_is_only_peeked_and_an_empty_one_is_not_whole():
    server, client = socket.socketpair()
    try:
        assert not whole_generation_request(server)  # nothing arrives: a short wait, then no
        assert request_arrival(server) is None  # silent: the worker hands it back to gunicorn's poller
        client.sendall(request())
        deadline = time.monotonic() + 5
        while not whole_generation_request(server) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert whole_generation_request(server)
        assert server.recv(65536) == request()  # every byte still there for gunicorn
    finally:
        server.close()
        client.close()


def test_a_request_landing_just_after_its_thread_starts_is_still_seen_whole():
    server, client = socket.socketpair()
    try:
        whole = request()
        threading.Timer(0.01, lambda: client.sendall(whole[:20])).start()
        threading.Timer(0.03, lambda: client.sendall(whole[20:])).start()
        assert whole_generation_request(server)
        assert server.recv(65536) == whole
        began = time.monotonic()
        client.sendall(b"POST /generate HTTP/1.1\r\n")  # never finished: given up on, not waited for
        assert not whole_generation_request(server) and time.monotonic() - began < 1.0
        assert request_arrival(server) is False  # something came: not a silent connection
    finally:
        server.close()
        client.close()
