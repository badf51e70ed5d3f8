"""Stateful sessions, ``n`` and ``logit_bias`` on the vLLM engine (the embedded engine's:
server/test_sessions, server/test_sampling_controls).

vLLM has no API to pin a session's blocks: its automatic prefix caching keeps them while no one
needs the room. What a session adds there is the transcript: the next turn starts with the very
token ids the model chose, so vLLM's block hashes match through the model's own answer (its
cached prompt tokens, per request, are Sluice's prefix-cache counters on this engine too).
"""

from __future__ import annotations

import requests

from http_client import metric, post

SESSION = "X-Amzn-SageMaker-Session-Id"
BLOCK = 128  # vLLM's KV block on a CPU
SYSTEM = "You are the Echo cheese shop's assistant. " + " ".join(f"rule{i}" for i in range(17))


def chat(url: str, session_id: str, messages: list[dict]) -> tuple[str, int, int]:
    response = post(url, {"messages": messages, "max_tokens": 48, "temperature": 0}, headers={SESSION: session_id})
    assert response.status_code == 200, response.text
    answer = response.json()
    return answer["choices"][0]["message"]["content"], answer["usage"]["prompt_tokens"], answer["usage"][
        "completion_tokens"]


def test_a_session_turn_reuses_vllms_blocks_through_the_models_own_answer(vllm_server):
    url = vllm_server.url
    opened = post(url, {"requestType": "NEW_SESSION"})
    session_id = opened.headers["X-Amzn-SageMaker-New-Session-Id"].split(";")[0]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Which cheese keeps longest?"}]
    answer, prompt, completion = chat(url, session_id, messages)
    assert prompt < BLOCK <= prompt + completion - 1  # only the answer completes the first block
    before = metric(url, "sluice_prefix_cache_hit_tokens")
    chat(url, session_id, messages + [{"role": "assistant", "content": answer}, {"role": "user", "content": "Why?"}])
    assert metric(url, "sluice_prefix_cache_hit_tokens") - before == (prompt + completion - 1) // BLOCK * BLOCK
    closed = post(url, {"requestType": "CLOSE"}, headers={SESSION: session_id})
    assert closed.status_code == 200 and closed.headers["X-Amzn-SageMaker-Closed-Session-Id"] == session_id
    assert post(url, {"inputs": "hi"}, headers={SESSION: session_id}).status_code == 400


def test_n_and_logit_bias_on_vllm(vllm_server, tiny_model_dir):
    from tokenizers import Tokenizer

    body = {"messages": [{"role": "user", "content": "Name a cheese."}], "max_tokens": 6}
    choices = requests.post(vllm_server.url + "/v1/chat/completions", timeout=60,
                            json=dict(body, n=2, seed=3, temperature=1.0)).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1] and choices[0]["message"] != choices[1]["message"]
    forced = requests.post(vllm_server.url + "/v1/completions", timeout=60,
                           json={"prompt": "Cheese", "max_tokens": 4, "logit_bias": {"300": 100}}).json()
    assert forced["choices"][0]["text"] == Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).decode([300] * 4)
