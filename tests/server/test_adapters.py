"""LoRA adapters through the real server on the embedded engine: SageMaker's adapter routes, every
selector, rows of different adapters in one batch, eviction, and both caches keyed by adapter.

One server for the module (two adapter slots, adapters ``a`` and ``b`` from ``LORA_ADAPTERS``);
tests that register more unregister them. The contract's finer rules are in
tests/unit/test_adapter_contract.py; the math against PEFT in tests/inprocess/test_lora_against_peft.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import torch
from safetensors.torch import load_file, save_file
from text_generation import Client

from demo.build_adapter import build_adapter
from deploy.local import SERVE, ContainerProcess, free_port
from http_client import post, sse_events, stream_raw

HEADER = "X-Amzn-SageMaker-Adapter-Identifier"
FRESH = {"x-use-cache": "0"}
PROMPT = "Tell me about cheese"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tiny_adapters):
    env = {"MAX_LORA_ADAPTERS": "2", "RESPONSE_CACHE_SIZE": "64",
           "LORA_ADAPTERS": ",".join(f"{name}={path}" for name, path in tiny_adapters.items())}
    with ContainerProcess(tiny_model_dir, env=env) as process:
        yield process


def text(server, adapter: str | None = None, prompt: str = PROMPT, headers: dict | None = None, **parameters) -> str:
    """The greedy answer, fresh (not from the response cache), with ``adapter`` named by the header."""
    headers = dict(FRESH, **(headers or {}), **({HEADER: adapter} if adapter else {}))
    body = {"inputs": prompt, "parameters": dict({"max_new_tokens": 16}, **parameters)}
    response = post(server.url, body, path="/generate", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["generated_text"]


def adapters(server) -> dict[str, dict]:
    return {a["name"]: a for a in requests.get(server.url + "/adapters", timeout=10).json()["adapters"]}


def test_adapters_from_lora_adapters_answer_through_the_header_adapter_id_and_model(server):
    listed = adapters(server)
    assert set(listed) == {"a", "b"} and all(a["loaded"] and a["rank"] == 8 for a in listed.values())
    base, with_a, with_b = text(server), text(server, "a"), text(server, "b")
    assert len({base, with_a, with_b}) == 3

    client = Client(server.url, headers={HEADER: "a"})  # text-generation's client, SageMaker's header
    assert client.generate(PROMPT, max_new_tokens=16).generated_text == with_a
    by_id = post(server.url, {"inputs": PROMPT, "parameters": {"max_new_tokens": 16, "adapter_id": "b"}},
                 path="/generate", headers=FRESH)
    assert by_id.json()["generated_text"] == with_b

    chat = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 12}
    by_model = post(server.url, dict(chat, model="a"), path="/v1/chat/completions", headers=FRESH).json()
    by_header = post(server.url, chat, path="/v1/chat/completions", headers=dict(FRESH, **{HEADER: "a"})).json()
    plain = post(server.url, chat, path="/v1/chat/completions", headers=FRESH).json()
    assert by_model["choices"][0]["message"] == by_header["choices"][0]["message"] != plain["choices"][0]["message"]
    assert by_model["model"] == "a"


def test_base_and_two_adapters_in_one_batch_each_answer_as_they_do_alone(server):
    cases = [(None, PROMPT), ("a", PROMPT), ("b", "Where is the station?"), ("a", "How do I cook rice?"), (None, "Hi")]
    alone = [text(server, adapter, prompt, max_new_tokens=24) for adapter, prompt in cases]
    together: list = [None] * len(cases)
    start = threading.Barrier(len(cases))

    def run(index: int) -> None:
        start.wait()
        together[index] = text(server, cases[index][0], cases[index][1], max_new_tokens=24)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_a_streamed_answer_with_an_adapter_is_the_non_streamed_one(server):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 16, "details": True}}
    whole = post(server.url, body, path="/generate", headers=dict(FRESH, **{HEADER: "b"})).json()
    response, raw = stream_raw(server.url, body, path="/generate_stream", headers=dict(FRESH, **{HEADER: "b"}))
    events = sse_events(raw)
    assert response.status_code == 200
    assert "".join(e["token"]["text"] for e in events) == whole["generated_text"] == events[-1]["generated_text"]
    assert [e["token"]["id"] for e in events] == [t["id"] for t in whole["details"]["tokens"]]


def test_an_unknown_adapter_a_missing_src_and_weights_that_do_not_fit_are_4xx(server, tiny_model_dir, tmp_path):
    unknown = post(server.url, {"inputs": PROMPT}, headers={HEADER: "nope"})
    assert unknown.status_code == 404 and "adapter `nope`" in unknown.json()["error"]
    missing = requests.post(server.url + "/adapters", json={"name": "m", "src": str(tmp_path / "none")}, timeout=10)
    assert missing.status_code == 404

    too_big = build_adapter(tiny_model_dir, tmp_path / "rank32", seed=5, rank=32)
    refused = requests.post(server.url + "/adapters", json={"name": "big", "src": str(too_big)}, timeout=30)
    assert refused.status_code == 424 and "greater than max_lora_rank (MAX_LORA_RANK=16)" in refused.json()["error"]

    other = tmp_path / "other-model"  # an adapter of a wider model: its A matrices do not fit
    build_adapter(tiny_model_dir, other, seed=6)
    tensors = load_file(str(other / "adapter_model.safetensors"))
    save_file({k: torch.cat([v, v], dim=1) if ".lora_A." in k else v for k, v in tensors.items()},
              str(other / "adapter_model.safetensors"))
    misfit = requests.post(server.url + "/adapters", json={"name": "other", "src": str(other)}, timeout=30)
    assert misfit.status_code == 424 and "an adapter of another base model" in misfit.json()["error"]

    dora = tmp_path / "dora"
    build_adapter(tiny_model_dir, dora, seed=7)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps(dict(config, use_dora=True)))
    refused = requests.post(server.url + "/adapters", json={"name": "dora", "src": str(dora)}, timeout=30)
    assert refused.status_code == 424 and "DoRA" in refused.json()["error"]
    assert set(adapters(server)) == {"a", "b"}


def test_adapters_beyond_the_slots_are_evicted_and_read_again_and_a_pinned_one_stays(server, tiny_model_dir,
                                                                                      tmp_path):
    extra = {name: build_adapter(tiny_model_dir, tmp_path / name, seed=seed) for name, seed in (("c", 3), ("d", 4))}
    assert requests.post(server.url + "/adapters", json={"name": "c", "src": str(extra["c"]), "pin": True},
                         timeout=30).status_code == 200
    pin = requests.post(f"{server.url}/adapters?name=d&src={extra['d']}&pin=true", timeout=30)
    assert pin.status_code == 409 and "pinned" in pin.json()["error"]
    assert requests.post(f"{server.url}/adapters?name=d&src={extra['d']}&preload=false", timeout=30).status_code == 200
    try:
        first = {name: text(server, name) for name in ("a", "b", "c", "d")}  # 4 adapters, 2 slots
        assert len(set(first.values())) == 4
        for name in ("d", "a", "b", "a", "d"):
            assert text(server, name) == first[name]
            listed = adapters(server)
            assert listed["c"]["loaded"] and listed["c"]["pinned"] and listed[name]["loaded"]
            assert sum(a["loaded"] for a in listed.values()) == 2
    finally:
        for name in ("c", "d"):
            requests.delete(f"{server.url}/adapters/{name}", timeout=10)


def test_cache_entries_are_never_shared_across_adapters(server):
    def answer(adapter: str | None) -> tuple[str, str]:
        response = post(server.url, {"inputs": "What is a rind?", "parameters": {"max_new_tokens": 8}},
                        path="/generate", headers={HEADER: adapter} if adapter else {})
        return response.json()["generated_text"], response.headers["x-sluice-cache"]

    first = [answer(None), answer("a"), answer("b")]
    assert [cache for _, cache in first] == ["miss"] * 3 and len({t for t, _ in first}) == 3
    assert [answer(None), answer("a"), answer("b")] == [(t, "hit") for t, _ in first]

    def prefix_hits() -> float:
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        return float(next(line.split()[1] for line in metrics.splitlines()
                          if line.startswith("sluice_prefix_cache_hits ")))

    system = "You are the cheese shop's assistant; answer in one short sentence. " * 3
    hits = prefix_hits()
    cold_a = text(server, "a", system + "Question: brie?")
    cold_base = text(server, None, system + "Question: brie?")  # same tokens, the base model's KV
    assert prefix_hits() == hits and cold_base != cold_a
    assert text(server, "a", system + "Question: brie?") == cold_a and prefix_hits() == hits + 1


def test_deleting_an_adapter_makes_its_name_unknown(server, tiny_adapters):
    registered = requests.post(server.url + "/adapters", json={"name": "e", "src": str(tiny_adapters["a"])},
                               headers={"X-Amzn-SageMaker-Adapter-Alias": "alias-e"}, timeout=30)
    assert registered.json()["message"] == "Adapter alias-e registered"
    assert text(server, "e") == text(server, "a")  # the same weights under another name
    deleted = requests.delete(server.url + "/adapters/e", timeout=10)
    assert deleted.status_code == 200 and deleted.json() == {"message": "Adapter alias-e unregistered"}
    assert post(server.url, {"inputs": PROMPT}, headers={HEADER: "e"}).status_code == 404
    assert requests.delete(server.url + "/adapters/e", timeout=10).status_code == 404


def test_a_lora_adapters_entry_that_is_no_directory_stops_the_start_in_one_line(tiny_model_dir, tmp_path):
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HF_MODEL_ID": str(tiny_model_dir),
           "SAGEMAKER_BIND_TO_PORT": str(free_port()), "LORA_ADAPTERS": "predibase/customer_support"}
    result = subprocess.run([str(SERVE)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "LORA_ADAPTERS: `predibase/customer_support` is not a directory" in result.stderr
