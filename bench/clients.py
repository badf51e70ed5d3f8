"""Streaming HTTP clients for the servers under test, recording when each token arrives.

Plain ``http.client`` on 127.0.0.1 and a line reader, so the client costs little CPU next to the
server it measures (both share the same cores). Each call returns one ``StreamTiming``:
send time, arrival time of every token event, and the server's own count of generated tokens.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class StreamTiming:
    sent: float
    event_times: list[float] = field(default_factory=list)  # one per token event (or chunk)
    generated_tokens: int = 0  # as the server reports it
    prompt_tokens: int = 0  # as the server reports it, where it does (vLLM's usage)
    finished: float = 0.0
    error: str | None = None
    text: str = ""  # the generated text, where the client keeps it (a chat turn's answer)

    @property
    def ttft(self) -> float:
        return self.event_times[0] - self.sent

    @property
    def gaps(self) -> list[float]:
        times = self.event_times
        return [b - a for a, b in zip(times, times[1:], strict=False)]


def _sse_events(response):
    """Yields the JSON payload of each ``data:`` line of an SSE stream as it arrives."""
    while True:
        line = response.readline()
        if not line:
            return
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload and payload != b"[DONE]":
                yield json.loads(payload)


def _post_stream(url: str, path: str, body: dict, timeout: float, headers: dict | None = None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    connection.request("POST", path, body=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", "Accept": "text/event-stream",
                                **(headers or {})})
    return connection, connection.getresponse()


def _timed_stream(url: str, path: str, body: dict, timeout: float, on_event, headers: dict | None = None,
                  error_text=str, timing: StreamTiming | None = None) -> StreamTiming:
    """POST ``body`` and feed each SSE payload to ``on_event(timing, event)``; stop at an error.

    A caller-supplied ``timing`` can be watched while the stream runs (the arrivals scenario
    waits for the running streams' first tokens before it sends more).
    """
    timing = timing or StreamTiming(sent=0.0)
    timing.sent = time.perf_counter()
    connection, response = _post_stream(url, path, body, timeout, headers)
    try:
        if response.status != 200:
            timing.error = f"HTTP {response.status}: {response.read()[:200]!r}"
            return timing
        for event in _sse_events(response):
            if "error" in event:
                timing.error = error_text(event)
                break
            on_event(timing, event)
    finally:
        timing.finished = time.perf_counter()
        connection.close()
    return timing


def sluice_stream(url: str, prompt: str, max_new_tokens: int, timeout: float = 600.0,
                  grammar: dict | None = None, timing: StreamTiming | None = None) -> StreamTiming:
    """TGI's /generate_stream: one event per token, the last one carries ``details``.

    ``x-use-cache: 0``: the prompt set repeats across levels, and a replay from Sluice's
    response cache would measure the cache, not generation.
    """
    def on_event(timing: StreamTiming, event: dict) -> None:
        timing.event_times.append(time.perf_counter())
        if event.get("details"):
            timing.generated_tokens = event["details"]["generated_tokens"]

    body = {"inputs": prompt, "stream": True,
            "parameters": {"max_new_tokens": max_new_tokens, "details": True, "grammar": grammar}}
    return _timed_stream(url, "/generate_stream", body, timeout, on_event, {"x-use-cache": "0"},
                         error_text=lambda e: f"{e.get('error_type')}: {e['error']}", timing=timing)


SESSION_HEADER = "X-Amzn-SageMaker-Session-Id"


def sluice_chat_turn(url: str, prompt: str, max_new_tokens: int, session_id: str | None = None,
                     timeout: float = 600.0) -> StreamTiming:
    """One chat turn on /generate_stream (the prompt is the rendered chat), in a stateful session
    when ``session_id`` is given; keeps the answer's text for the next turn's history."""
    def on_event(timing: StreamTiming, event: dict) -> None:
        timing.event_times.append(time.perf_counter())
        if event.get("details"):
            timing.generated_tokens = event["details"]["generated_tokens"]
            timing.text = event["generated_text"]

    body = {"inputs": prompt, "stream": True, "parameters": {"max_new_tokens": max_new_tokens, "details": True}}
    headers = {"x-use-cache": "0", **({SESSION_HEADER: session_id} if session_id else {})}
    return _timed_stream(url, "/generate_stream", body, timeout, on_event, headers,
                         error_text=lambda e: f"{e.get('error_type')}: {e['error']}")


def session_request(url: str, request_type: str, session_id: str | None = None, timeout: float = 30.0) -> str:
    """Open (``NEW_SESSION``: returns the new id) or close (``CLOSE``) a stateful session."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", "/invocations", body=json.dumps({"requestType": request_type}).encode(),
                           headers={"Content-Type": "application/json",
                                    **({SESSION_HEADER: session_id} if session_id else {})})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{request_type}: HTTP {response.status}: {body[:200]!r}")
        return (response.getheader("X-Amzn-SageMaker-New-Session-Id") or session_id or "").split(";")[0]
    finally:
        connection.close()


def openai_completion_stream(url: str, prompt: str, max_new_tokens: int,
                             timeout: float = 600.0, timing: StreamTiming | None = None) -> StreamTiming:
    """`transformers serve`'s /v1/completions: text chunks, then a final chunk with ``usage``.

    Its server drains several queued tokens into one chunk when it falls behind, so event times
    here are chunk times; the token count comes from ``usage.completion_tokens``.
    """
    def on_event(timing: StreamTiming, event: dict) -> None:
        if event.get("usage"):
            timing.generated_tokens = event["usage"]["completion_tokens"]
        elif event.get("choices"):
            timing.event_times.append(time.perf_counter())

    body = {"prompt": prompt, "max_tokens": max_new_tokens, "temperature": 0, "stream": True}
    return _timed_stream(url, "/v1/completions", body, timeout, on_event,
                         error_text=lambda e: str(e["error"]), timing=timing)


def vllm_completion_stream(url: str, input_ids, max_new_tokens: int, timeout: float = 600.0,
                           timing: StreamTiming | None = None) -> StreamTiming:
    """vLLM's own /v1/completions, fed the very token ids Sluice tokenizes the text to.

    ``ignore_eos`` makes it generate exactly ``max_new_tokens`` (Sluice's untrained benchmark
    model practically never emits EOS; the bench checks the counts match). vLLM sends one chunk
    per token; the count comes from ``usage.completion_tokens``.
    """
    def on_event(timing: StreamTiming, event: dict) -> None:
        if event.get("usage"):
            timing.generated_tokens = event["usage"]["completion_tokens"]
            timing.prompt_tokens = event["usage"].get("prompt_tokens", 0)
        if event.get("choices"):
            timing.event_times.append(time.perf_counter())

    body = {"prompt": list(input_ids), "max_tokens": max_new_tokens, "temperature": 0, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}
    return _timed_stream(url, "/v1/completions", body, timeout, on_event,
                         error_text=lambda e: str(e["error"]), timing=timing)


def get_text(url: str, path: str, timeout: float = 5.0) -> str:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def get_latency(url: str, path: str, timeout: float = 5.0) -> float | None:
    """Seconds for one GET (a fresh connection, like a load balancer's probe); None on failure."""
    parts = urlsplit(url)
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        connection.close()
    except OSError:
        return None
    return time.perf_counter() - started if response.status == 200 else None
