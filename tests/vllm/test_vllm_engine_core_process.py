"""Sluice's layout on CUDA, on this CPU: vLLM's engine core in its own process (vLLM's
multiprocess client, ``VLLM_ENABLE_V1_MULTIPROCESSING=1``), whose per-step outputs arrive as
msgpack messages that Sluice's array hook decodes (engines/vllm/output_decoding). The answers,
log-probabilities included, must be those of the engine core in the worker process (the shared
``vllm_server``, the CPU default); a client that leaves must abort its request across the process
boundary. Skips when .venv-vllm is absent (make install-vllm).
"""

from __future__ import annotations

import pytest
import requests

from deploy.local import ContainerProcess
from http_client import generate, hang_up_and_wait_for_log, stream_events
from local_processes import VLLM_BIN, VLLM_START_SECONDS

pytestmark = pytest.mark.vllm

DETAILS = {"max_new_tokens": 8, "details": True, "top_n_tokens": 3, "decoder_input_details": True}


@pytest.fixture(scope="module")
def core_process_server(tiny_model_dir, vllm_server):
    """A second vLLM server, its engine core in its own process; the shared one keeps it in its worker."""
    env = {"SLUICE_ENGINE": "vllm", "DTYPE": "auto", "RESPONSE_CACHE_SIZE": "0", "SLUICE_TORCH_THREADS": "1",
           "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    process = ContainerProcess(tiny_model_dir, env=env, bin_dir=VLLM_BIN).start()
    try:
        yield process.wait_ready(timeout=VLLM_START_SECONDS)
    finally:
        process.stop()


def _info(server) -> dict:
    return requests.get(server.url + "/info", timeout=10).json()


def test_info_says_where_vllms_engine_core_runs(core_process_server, vllm_server):
    assert _info(core_process_server)["engine_core"] == "own process"
    assert _info(vllm_server)["engine_core"] == "worker process"
    assert "engine core: own process (log-probabilities sent as lists)" in core_process_server.log_text()
    assert "engine core: worker process (log-probabilities sent as lists)" in vllm_server.log_text()


def test_details_and_log_probabilities_equal_the_in_process_engine_cores(core_process_server, vllm_server):
    separate = generate(core_process_server.url, "Hello world", path="/generate", **DETAILS)
    together = generate(vllm_server.url, "Hello world", path="/generate", **DETAILS)
    assert separate["generated_text"] == together["generated_text"]
    ours, theirs = separate["details"], together["details"]
    assert [t["id"] for t in ours["tokens"]] == [t["id"] for t in theirs["tokens"]]
    assert [t["id"] for t in ours["prefill"]] == [t["id"] for t in theirs["prefill"]]
    assert [[t["id"] for t in top] for top in ours["top_tokens"]] == \
        [[t["id"] for t in top] for top in theirs["top_tokens"]]
    logprobs = [t["logprob"] for t in ours["tokens"]] + [t["logprob"] for top in ours["top_tokens"] for t in top]
    expected = [t["logprob"] for t in theirs["tokens"]] + [t["logprob"] for top in theirs["top_tokens"] for t in top]
    assert logprobs == pytest.approx(expected, abs=1e-3) and all(value < 0 for value in logprobs)
    assert [t["logprob"] for t in ours["prefill"][1:]] == \
        pytest.approx([t["logprob"] for t in theirs["prefill"][1:]], abs=1e-3)


def test_each_streamed_event_carries_the_non_streamed_tokens_log_probability(core_process_server):
    answer = generate(core_process_server.url, "The cheese maker said", path="/generate", max_new_tokens=16,
                      details=True)
    events = stream_events(core_process_server.url, "The cheese maker said", path="/generate_stream",
                           max_new_tokens=16)
    assert [(e["token"]["id"], e["token"]["text"], e["token"]["logprob"]) for e in events] == \
        [(t["id"], t["text"], t["logprob"]) for t in answer["details"]["tokens"]]
    assert events[-1]["generated_text"] == answer["generated_text"]


def test_a_client_that_disconnects_aborts_the_request_in_the_engine_core_process(core_process_server):
    hang_up_and_wait_for_log(core_process_server, "vLLM request aborted")
    # the engine core still answers
    assert generate(core_process_server.url, "Hello", max_new_tokens=4)[0]["generated_text"]
