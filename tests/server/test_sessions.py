"""Stateful sessions through the real server (the store's rules: unit/test_session_store; the
cache's pins: unit/test_prefix_cache).

A session is opened, used, closed and expires as SageMaker's contract says, with the standards
package's statuses and texts; and it buys what it promises: a turn in a session reuses the KV of
the whole conversation before it, the model's own answers included, even after other traffic
has flushed every unpinned prefix from the cache (the prefix-cache counters on /metrics show
it, with the pinned tokens never above their share).
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from deploy.local import ContainerProcess
from http_client import metric, post

SESSION = "X-Amzn-SageMaker-Session-Id"
NEW_SESSION = "X-Amzn-SageMaker-New-Session-Id"
CLOSED = "X-Amzn-SageMaker-Closed-Session-Id"
ID = r"[a-zA-Z0-9](-*[a-zA-Z0-9])*"
BLOCK = 16  # the embedded engine's prefix-cache block
CACHE_TOKENS = 512  # MAX_BATCH_TOTAL_TOKENS 4096 / 8: the prefix cache's bound; pins get half


@pytest.fixture(scope="module")
def sessions_server(tiny_model_dir, tiny_adapters):
    """Sessions on, and a small prefix cache, so a few prompts flush whatever is not pinned; two
    LoRA adapters, ``a`` and ``b``, for turns that name one."""
    env = {"SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true", "MAX_BATCH_TOTAL_TOKENS": "4096",
           "RESPONSE_CACHE_SIZE": "0", "LORA_ADAPTERS": ",".join(f"{n}={p}" for n, p in tiny_adapters.items())}
    with ContainerProcess(tiny_model_dir, env=env) as process:
        yield process


def open_session(url: str) -> str:
    response = post(url, {"requestType": "NEW_SESSION"}, headers={SESSION: "NEW_SESSION"})
    assert response.status_code == 200, response.text
    session_id = response.headers[NEW_SESSION].split(";")[0]
    assert response.text == f"Session {session_id} created"
    return session_id


def chat(url: str, session_id: str | None, messages: list[dict], stream: bool = False,
         adapter: str | None = None) -> tuple[str, int, int]:
    """One greedy turn (with the LoRA ``adapter`` named as OpenAI's ``model``): the answer's
    text, and the prompt and completion tokens it used."""
    body = {"messages": messages, "max_tokens": 24, "temperature": 0, **({"model": adapter} if adapter else {})}
    headers = {SESSION: session_id} if session_id else {}
    if not stream:
        response = post(url, body, headers=headers)
        assert response.status_code == 200, response.text
        answer = response.json()
        return (answer["choices"][0]["message"]["content"], answer["usage"]["prompt_tokens"],
                answer["usage"]["completion_tokens"])
    body.update(stream=True, stream_options={"include_usage": True})
    response = post(url, body, headers=headers)
    chunks = [json.loads(line[6:]) for line in response.content.decode("utf-8").splitlines()
              if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    return text, chunks[-1]["usage"]["prompt_tokens"], chunks[-1]["usage"]["completion_tokens"]


def pinned_tokens(url: str, until=lambda value: True, timeout: float = 5.0) -> float:
    """The pinned-tokens gauge once ``until`` holds (or at the timeout): the engine pins a turn's
    conversation, or releases a closed session's, just after the answer leaves."""
    deadline = time.monotonic() + timeout
    while not until(value := metric(url, "sluice_prefix_cache_pinned_tokens")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def hit_tokens(url: str) -> float:
    return metric(url, "sluice_prefix_cache_hit_tokens")


def kept(prompt_tokens: int, completion_tokens: int) -> int:
    """What a finished turn leaves pinned: its prompt and answer but the last token (whose KV
    was never computed), in whole blocks."""
    return (prompt_tokens + completion_tokens - 1) // BLOCK * BLOCK


def conversation(system: str) -> list[dict]:
    return [{"role": "system", "content": system + " Answer briefly, in the customer's language."},
            {"role": "user", "content": "How long does brie keep in a cold cellar?"}]


def flush_the_cache(url: str) -> None:
    """Unrelated prompts holding well over the cache's bound, so LRU evicts every unpinned entry."""
    for i in range(8):
        text = f"Unrelated request {i}: " + " ".join(f"item{i}x{j}" for j in range(40))
        assert post(url, {"inputs": text, "parameters": {"max_new_tokens": 1}}).status_code == 200


def test_a_session_is_opened_with_the_id_and_expiry_in_both_headers(sessions_server):
    response = post(sessions_server.url, {"requestType": "NEW_SESSION"})
    value = response.headers[NEW_SESSION]
    match = re.fullmatch(rf"({ID}); Expires=(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", value)
    assert response.status_code == 200 and match and len(match.group(1)) <= 256
    assert response.headers[SESSION] == value
    expires = time.mktime(time.strptime(match.group(3), "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(expires - (time.time() + 1200)) < 60  # SESSION_TTL_SECONDS' default
    assert metric(sessions_server.url, "sluice_sessions_open") >= 1
    # SageMaker's placeholder names no session (as in the standards package): the request runs alone.
    alone = post(sessions_server.url, {"inputs": "hi", "parameters": {"max_new_tokens": 1}},
                 headers={SESSION: "NEW_SESSION"})
    assert alone.status_code == 200


def test_each_turn_in_a_session_reuses_the_whole_conversation_before_it_streamed_or_not(sessions_server):
    url = sessions_server.url
    session_id = open_session(url)
    messages = conversation("Alpha cheese shop.")
    answer, prompt, completion = chat(url, session_id, messages)
    assert pinned_tokens(url, until=lambda value: value == kept(prompt, completion)) == kept(prompt, completion)
    for turn, stream in ((2, True), (3, False)):
        messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": f"And turn {turn}?"}]
        before = hit_tokens(url)
        expected = kept(prompt, completion)
        answer, prompt, completion = chat(url, session_id, messages, stream=stream)
        assert hit_tokens(url) - before == expected, turn  # the model's own answer's KV included


def test_a_pinned_conversation_survives_traffic_that_flushes_the_rest_of_the_cache(sessions_server):
    url = sessions_server.url
    session_id = open_session(url)
    pinned = conversation("Bravo fromagerie.")
    unpinned = conversation("Charlie dairy counter.")
    pinned_answer, prompt, completion = chat(url, session_id, pinned)
    unpinned_answer, _, _ = chat(url, None, unpinned)
    flush_the_cache(url)
    assert metric(url, "sluice_prefix_cache_tokens") <= CACHE_TOKENS
    assert metric(url, "sluice_prefix_cache_pinned_tokens") <= CACHE_TOKENS // 2
    before = hit_tokens(url)
    chat(url, None, unpinned + [{"role": "assistant", "content": unpinned_answer},
                                {"role": "user", "content": "And camembert?"}])
    assert hit_tokens(url) == before  # evicted
    chat(url, session_id, pinned + [{"role": "assistant", "content": pinned_answer},
                                    {"role": "user", "content": "And camembert?"}])
    assert hit_tokens(url) - before == kept(prompt, completion)


def test_a_sessions_conversation_is_reused_only_by_a_turn_with_the_adapter_that_answered_it(sessions_server):
    """The pinned KV was computed with adapter ``a``: the next turn reuses it with ``a``; the same
    turn with ``b`` or the base model reuses nothing (the KV of another model never leaks in)."""
    url = sessions_server.url
    session_id = open_session(url)
    messages = conversation("Echo cheese cellar.")
    before = pinned_tokens(url)
    answer, prompt, completion = chat(url, session_id, messages, adapter="a")
    pinned_tokens(url, until=lambda value: value != before)  # the turn is pinned just after its answer
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And goat cheese?"}]
    reused = {}
    for adapter in ("a", "b", None):
        start = hit_tokens(url)
        chat(url, session_id, messages, adapter=adapter)
        reused[adapter] = hit_tokens(url) - start
    assert reused == {"a": kept(prompt, completion), "b": 0, None: 0}
    assert post(url, {"requestType": "CLOSE"}, headers={SESSION: session_id}).status_code == 200


def test_a_closed_session_is_unpinned_and_then_unknown(sessions_server):
    url = sessions_server.url
    session_id = open_session(url)
    before = pinned_tokens(url)
    chat(url, session_id, conversation("Delta cheese cave."))
    pinned = pinned_tokens(url, until=lambda value: value != before)
    assert pinned != before
    closed = post(url, {"requestType": "CLOSE"}, headers={SESSION: session_id})
    assert closed.status_code == 200 and closed.headers[CLOSED] == session_id
    assert closed.text == f"Session {session_id} closed"
    assert pinned_tokens(url, until=lambda value: value < pinned) < pinned
    for body in ({"inputs": "hi"}, {"requestType": "CLOSE"}):
        again = post(url, body, headers={SESSION: session_id})
        assert again.status_code == 400
        assert again.json() == {"error": f"Bad request: session not found: {session_id}", "error_type": "session"}


@pytest.mark.parametrize("body,headers,message", [
    ({"inputs": "hi"}, {SESSION: "no-such-session"}, "Bad request: session not found: no-such-session"),
    ({"inputs": "hi", "stream": True}, {SESSION: "../etc"}, "Bad request: session not found: ../etc"),
    ({"requestType": "CLOSE"}, {}, "Session ID is required in request headers to close a session"),
    ({"requestType": "OPEN"}, {}, "Bad request: requestType must be NEW_SESSION or CLOSE. Given: 'OPEN'"),
    ({"requestType": "NEW_SESSION", "inputs": "hi"}, {},
     "Bad request: a session request holds requestType only. Given also: inputs"),
])
def test_unknown_sessions_and_malformed_session_requests_are_400s(sessions_server, body, headers, message):
    response = post(sessions_server.url, body, headers=headers)
    assert response.status_code == 400 and response.json() == {"error": message, "error_type": "session"}


def wait_for_workers(server: ContainerProcess, workers: int, timeout: float = 120) -> None:
    """/ping says ready when the first worker is; each says so in the log once its model is in."""
    deadline = time.monotonic() + timeout
    while server.log_text().count("model ready after") < workers:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)


def test_sessions_expire_and_every_worker_finds_them(start_server):
    """Two workers (a session comes back to the instance, not to its worker): every request of
    the session finds it, whichever worker answers; after its TTL it is a 400."""
    server = start_server(env={"SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true", "SESSION_TTL_SECONDS": "3",
                               "SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    wait_for_workers(server, 2)
    session_id = open_session(server.url)
    statuses = [post(server.url, {"inputs": f"hi {i}", "parameters": {"max_new_tokens": 1}},
                     headers={SESSION: session_id}).status_code for i in range(6)]
    assert statuses == [200] * 6
    time.sleep(3.5)
    expired = post(server.url, {"inputs": "hi"}, headers={SESSION: session_id})
    assert expired.status_code == 400 and expired.json()["error"] == f"Bad request: session expired: {session_id}"


def test_with_sessions_off_a_session_header_or_body_is_a_400(server):
    for body, headers, message in (
            ({"requestType": "NEW_SESSION"}, {}, "Invalid payload. stateful sessions not enabled"),
            ({"inputs": "hi"}, {SESSION: "abc"},
             "Invalid payload. stateful sessions not enabled, X-Amzn-SageMaker-Session-Id header not supported"),
            ({"inputs": "hi", "stream": True}, {SESSION: "abc"},
             "Invalid payload. stateful sessions not enabled, X-Amzn-SageMaker-Session-Id header not supported")):
        response = requests.post(server.url + "/invocations", json=body, headers=headers, timeout=30)
        assert response.status_code == 400 and response.json() == {"error": message, "error_type": "session"}
