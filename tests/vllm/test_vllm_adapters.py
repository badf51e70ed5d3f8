"""LoRA adapters on the vLLM engine, against the tier's one server (two adapter slots).

The same contract as the embedded engine (tests/server/test_adapters.py): registering by body and
by query, every selector, each row answering as it does alone whatever runs beside it (on vLLM's
CPU build base and adapter requests take turns: its LoRA kernels would give a base row the last
adapter's weights), streamed == non-streamed, 404/424 for what cannot be served, delete, and
adapters beyond vLLM's slots read again. Each test unregisters what it registered.
"""

from __future__ import annotations

import threading

import pytest
import requests

from demo.build_adapter import build_adapter
from http_client import post, sse_events, stream_raw

pytestmark = pytest.mark.vllm

HEADER = "X-Amzn-SageMaker-Adapter-Identifier"
PROMPT = "Tell me about cheese"


def text(server, adapter: str | None = None, prompt: str = PROMPT, **parameters) -> str:
    body = {"inputs": prompt, "parameters": dict({"max_new_tokens": 12}, **parameters)}
    response = post(server.url, body, path="/generate", headers={HEADER: adapter} if adapter else {})
    assert response.status_code == 200, response.text
    return response.json()["generated_text"]


@pytest.fixture
def registered(vllm_server, tiny_adapters):
    """``a`` by JSON body, ``b`` by query parameters; unregistered afterwards."""
    url = vllm_server.url
    first = requests.post(url + "/adapters", json={"name": "a", "src": str(tiny_adapters["a"])}, timeout=60)
    second = requests.post(f"{url}/adapters?name=b&src={tiny_adapters['b']}", timeout=60)
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert second.json()["message"] == "Adapter b registered"
    yield vllm_server
    for name in ("a", "b"):
        requests.delete(f"{url}/adapters/{name}", timeout=60)


def test_each_selector_runs_its_adapter_and_a_mixed_load_answers_as_alone(registered):
    base, with_a, with_b = text(registered), text(registered, "a"), text(registered, "b")
    assert len({base, with_a, with_b}) == 3
    by_id = post(registered.url, {"inputs": PROMPT, "parameters": {"max_new_tokens": 12, "adapter_id": "b"}},
                 path="/generate")
    assert by_id.json()["generated_text"] == with_b
    chat = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8}
    by_model = post(registered.url, dict(chat, model="a"), path="/v1/chat/completions").json()
    by_header = post(registered.url, chat, path="/v1/chat/completions", headers={HEADER: "a"}).json()
    assert by_model["choices"][0]["message"] == by_header["choices"][0]["message"]

    cases = [None, "a", "b", None]  # the tier's server has four request slots
    answers: list = [None] * len(cases)
    start = threading.Barrier(len(cases))

    def run(index: int) -> None:
        start.wait()
        answers[index] = text(registered, cases[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [{None: base, "a": with_a, "b": with_b}[name] for name in cases]


def test_a_streamed_answer_with_an_adapter_is_the_non_streamed_one(registered):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 12}}
    whole = post(registered.url, body, path="/generate", headers={HEADER: "b"}).json()["generated_text"]
    response, raw = stream_raw(registered.url, body, path="/generate_stream", headers={HEADER: "b"})
    assert response.status_code == 200 and sse_events(raw)[-1]["generated_text"] == whole


def test_what_cannot_be_served_is_a_4xx_and_a_deleted_adapter_is_unknown(registered, tiny_model_dir, tmp_path):
    url = registered.url
    assert post(url, {"inputs": PROMPT}, headers={HEADER: "nope"}).status_code == 404
    assert requests.post(url + "/adapters", json={"name": "m", "src": str(tmp_path / "none")},
                         timeout=60).status_code == 404
    too_big = build_adapter(tiny_model_dir, tmp_path / "rank32", seed=5, rank=32)
    refused = requests.post(url + "/adapters", json={"name": "big", "src": str(too_big)}, timeout=60)
    assert refused.status_code == 424 and "greater than max_lora_rank" in refused.json()["error"]
    assert requests.delete(url + "/adapters/b", timeout=60).json() == {"message": "Adapter b unregistered"}
    assert post(url, {"inputs": PROMPT}, headers={HEADER: "b"}).status_code == 404


def test_adapters_beyond_vllms_slots_are_read_again_when_used(registered, tiny_model_dir, tmp_path):
    url = registered.url
    third = build_adapter(tiny_model_dir, tmp_path / "c", seed=3)
    assert requests.post(url + "/adapters", json={"name": "c", "src": str(third)}, timeout=60).status_code == 200
    try:
        first = {name: text(registered, name) for name in ("a", "b", "c")}  # three adapters, two slots
        assert len(set(first.values())) == 3
        assert [text(registered, name) for name in ("a", "c", "b", "a")] == [first[n] for n in ("a", "c", "b", "a")]
        listed = requests.get(url + "/adapters", timeout=60).json()["adapters"]
        assert sum(a["loaded"] for a in listed) == 2
    finally:
        requests.delete(url + "/adapters/c", timeout=60)


def test_a_long_prompt_cached_for_the_base_model_is_never_reused_for_an_adapter(registered):
    """vLLM's automatic prefix cache keys blocks by adapter too."""
    system = "You are the cheese shop's assistant; answer in one short sentence. " * 4
    cold_a = text(registered, "a", system + "Question: brie?")
    base = text(registered, None, system + "Question: brie?")
    assert text(registered, "a", system + "Question: brie?") == cold_a != base
