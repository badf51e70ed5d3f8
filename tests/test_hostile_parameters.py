"""Hostile parameters through the real server: a clear 422 for the sender, nothing for the others.

Values that vanish or overflow in float32 (where sampling runs), a seed beyond u64, and clients
that hang up on non-streaming requests must never cost another client its stream or a slot.
"""

from __future__ import annotations

import json
import re
import socket

import requests

from http_client import generate, metric, post, stream_events, wait_for

PROMPT = "How do you make cheese? First,"
LONG_STREAM_TOKENS = 450
U64_MAX = 2**64 - 1
FLOAT_BOUNDS = "must be >= 1e-37 and <= 1e37"

HOSTILE = [
    ({"do_sample": True, "temperature": 1e-300},
     f"Input validation error: `temperature` {FLOAT_BOUNDS} (or 0 for greedy). Given: 1e-300"),
    ({"do_sample": True, "temperature": 1e39},
     f"Input validation error: `temperature` {FLOAT_BOUNDS} (or 0 for greedy). Given: 1e39"),
    ({"do_sample": True, "top_p": 1e-300},
     "Input validation error: `top_p` must be >= 1e-37 and <= 1.0. Given: 1e-300"),
    ({"do_sample": True, "typical_p": 5e-324},
     "Input validation error: `typical_p` must be >= 1e-37 and <= 1.0. Given: 5e-324"),
    ({"do_sample": True, "repetition_penalty": 1e-40},
     f"Input validation error: `repetition_penalty` {FLOAT_BOUNDS}. Given: 1e-40"),
    ({"repetition_penalty": 1e39},
     f"Input validation error: `repetition_penalty` {FLOAT_BOUNDS}. Given: 1e39"),
    ({"do_sample": True, "seed": 2**64},
     "Failed to deserialize the JSON body into the target type: parameters.seed: invalid value: "
     "integer `18446744073709551616`, expected u64"),
    ({"top_k": 2**31},
     "Failed to deserialize the JSON body into the target type: parameters.top_k: invalid value: "
     "integer `2147483648`, expected i32"),
]

# At the bounds every value is accepted, and sampling must stay finite.
EXTREME_BUT_VALID = [
    {"do_sample": True, "temperature": 1e-37}, {"do_sample": True, "temperature": 1e37},
    {"do_sample": True, "top_p": 1e-37}, {"do_sample": True, "typical_p": 1e-37},
    {"do_sample": True, "repetition_penalty": 1e-37}, {"do_sample": True, "repetition_penalty": 1e37},
]


class LongStream:
    """Another client's stream, opened before the hostile requests and read to its end after."""

    def __init__(self, url: str):
        body = {"inputs": "Tell me a long story", "parameters": {"max_new_tokens": LONG_STREAM_TOKENS}}
        self.response = requests.post(url + "/generate_stream", json=body, stream=True, timeout=300)
        self.lines = self.response.iter_lines()
        self.events = [self._next()]  # its first token: the stream is running in the batch now

    def _next(self) -> dict:
        for line in self.lines:
            if line.startswith(b"data:"):
                return json.loads(line[len(b"data:"):])
        raise AssertionError("the stream ended without a last event")

    def finish(self) -> list[dict]:
        while "generated_text" not in self.events[-1] or self.events[-1]["generated_text"] is None:
            self.events.append(self._next())
            assert "error" not in self.events[-1], self.events[-1]
        return self.events


def assert_stream_refused(url: str, parameters: dict, message: str) -> None:
    """Validation errors come in-band (HTTP 200), as TGI's; a body serde cannot read is a plain 422
    there too, because TGI's JSON extractor refuses it before the stream starts."""
    error = {"error": message, "error_type": "validation"}
    if message.startswith("Failed to deserialize"):
        response = post(url, {"inputs": PROMPT, "parameters": parameters}, path="/generate_stream")
        assert (response.status_code, response.json()) == (422, error)
    else:
        assert stream_events(url, PROMPT, path="/generate_stream", **parameters) == [error]


def test_hostile_values_get_a_422_naming_them_and_a_running_stream_is_unharmed(server):
    neighbour = LongStream(server.url)
    for parameters, message in HOSTILE:
        response = post(server.url, {"inputs": PROMPT, "parameters": parameters}, path="/generate")
        assert (response.status_code, response.json()) == (422, {"error": message, "error_type": "validation"})
        assert_stream_refused(server.url, parameters, message)
    for parameters in EXTREME_BUT_VALID:
        run = generate(server.url, PROMPT, path="/generate", max_new_tokens=8, details=True, **parameters)
        assert run["details"]["generated_tokens"] == 8, parameters
    events = neighbour.finish()
    assert [e["index"] for e in events] == list(range(1, LONG_STREAM_TOKENS + 1))


def test_the_largest_u64_seed_is_used_and_echoed(server):
    run = generate(server.url, PROMPT, path="/generate", do_sample=True, seed=U64_MAX, max_new_tokens=6, details=True)
    again = generate(server.url, PROMPT, path="/generate", do_sample=True, seed=U64_MAX, max_new_tokens=6, details=True)
    assert run["details"]["seed"] == U64_MAX and again["generated_text"] == run["generated_text"]
    events = stream_events(server.url, PROMPT, path="/generate_stream", do_sample=True, seed=U64_MAX,
                           max_new_tokens=6, details=True)
    assert events[-1]["details"]["seed"] == U64_MAX
    assert events[-1]["generated_text"] == run["generated_text"]


def _send_generate(url: str, max_new_tokens: int) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": "Tell me a long story", "parameters": {"max_new_tokens": max_new_tokens}}).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


def _cancelled_after(process) -> list[int]:
    """How many tokens each cancelled sequence had generated, from the engine's log."""
    return [int(n) for n in re.findall(r"cancelled \(client disconnected\) after (\d+) tokens", process.log_text())]


def test_abandoned_non_streaming_requests_are_all_cancelled_and_free_their_slots(start_server):
    clients = 5  # every slot: a request left running would keep one
    small = start_server(env={"MAX_CONCURRENT_REQUESTS": str(clients), "RESPONSE_CACHE_SIZE": "0"})
    sockets = [_send_generate(small.url, 900) for _ in range(clients)]
    wait_for(lambda: metric(small.url, "tgi_batch_current_size") == clients, "all requests are generating")
    for sock in sockets:
        sock.close()
    wait_for(lambda: metric(small.url, "sluice_request_cancelled") == clients, "every request is cancelled")
    wait_for(lambda: metric(small.url, "sluice_requests_in_flight") == 0, "every slot is free")
    wait_for(lambda: metric(small.url, "tgi_batch_current_size") == 0, "every batch row is free")
    assert metric(small.url, "tgi_request_success") == 0
    wait_for(lambda: len(_cancelled_after(small)) == clients, "the engine logged every cancellation",
              detail=lambda: small.log_tail(15))
    assert max(_cancelled_after(small)) < 900, _cancelled_after(small)
    # every slot came back: a full set of new requests is admitted, none refused with 429
    for _ in range(clients):
        generate(small.url, "Hi", path="/generate", max_new_tokens=2)
