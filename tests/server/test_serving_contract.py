"""The SageMaker contract through the real `container/serve` process: /ping, /invocations, framing,
and what /info says of the model it serves."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import requests
import torch

from blog_token_iterator import BlogTokenIterator
from deploy.local import SERVE, ContainerProcess, ping_status
from http_client import generate, post, sse_events, stream_events, stream_raw
from sluice.config import Config
from sluice.model.loading import select_dtype

JAPANESE = "チーズの作り方を教えてください。"


def test_ping_is_503_with_json_until_the_model_is_ready_then_200(tiny_model_dir):
    process = ContainerProcess(tiny_model_dir).start()
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = requests.get(process.url + "/ping", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.05)
                continue
            seen.append(response.status_code)
            if response.status_code == 503:
                assert response.json()["error_type"] == "healthcheck"
            if response.status_code == 200:
                break
            time.sleep(0.02)
        assert seen and seen[-1] == 200
        assert 503 in seen, "the port should answer (503) while the model is still loading"
        assert set(seen) <= {503, 200}
        assert generate(process.url, "Hello", max_new_tokens=2)[0]["generated_text"]
    finally:
        assert process.stop() == 0


def test_a_model_that_fails_to_load_never_turns_healthy_and_the_server_exits(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    process = ContainerProcess(broken).start()
    statuses = []
    while process.proc.poll() is None:
        statuses.append(ping_status(process.url, timeout=1))
        time.sleep(0.05)
    assert process.proc.returncode != 0
    assert 200 not in statuses
    assert "model loading failed" in process.log_text()


def test_contradictory_limits_stop_the_server_at_start_with_one_line(tiny_model_dir):
    result = subprocess.run([str(SERVE)], capture_output=True, text=True, timeout=30, env={
        "PATH": f"{sys.prefix}/bin", "HF_MODEL_ID": str(tiny_model_dir),
        "MAX_INPUT_TOKENS": "512", "MAX_TOTAL_TOKENS": "256"})
    assert result.returncode == 1
    assert result.stderr.strip() == "sluice: error: `max_input_tokens`(512) must be < `max_total_tokens`(256)"


def test_serve_ignores_sagemakers_serve_argument_and_unknown_env(tiny_model_dir):
    process = ContainerProcess(tiny_model_dir, env={"SAGEMAKER_PROGRAM": "inference.py",
                                                    "ENDPOINT_SERVER_TIMEOUT": "3600",
                                                    "SM_NUM_GPUS": "1", "MAX_INPUT_LENGTH": "1024"})
    process.start()
    try:
        process.wait_ready()
        assert generate(process.url, "Hi", max_new_tokens=1)
    finally:
        process.stop()


def test_non_streaming_answer_is_a_list_without_details_unless_asked(server):
    plain = generate(server.url, "The cheese", max_new_tokens=5)
    assert isinstance(plain, list) and set(plain[0]) == {"generated_text"}
    detailed = generate(server.url, "The cheese", max_new_tokens=5, details=True, decoder_input_details=True,
                        top_n_tokens=2)[0]
    details = detailed["details"]
    assert details["finish_reason"] == "length" and details["generated_tokens"] == 5
    assert details["seed"] is None
    assert details["prefill"][0]["logprob"] is None
    assert all(isinstance(t["logprob"], float) for t in details["prefill"][1:])
    assert [set(t) for t in details["tokens"]] == [{"id", "text", "logprob", "special"}] * 5
    assert all(len(top) == 2 for top in details["top_tokens"])
    # return_full_text defaults to true on /invocations, like TGI for a local model directory
    assert detailed["generated_text"] == "The cheese" + "".join(t["text"] for t in details["tokens"])


def test_stream_is_byte_exact_sse_with_text_and_details_on_the_last_event(server):
    response, raw = stream_raw(server.url, {"inputs": "The cheese", "stream": True,
                                            "parameters": {"max_new_tokens": 6, "details": True}})
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert [e["index"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    last = events[-1]
    assert last["details"] == {"finish_reason": "length", "generated_tokens": 6, "seed": None,
                               "input_length": last["details"]["input_length"]}
    assert last["generated_text"] == "The cheese" + "".join(e["token"]["text"] for e in events)
    first = json.dumps(events[0], ensure_ascii=False, separators=(",", ":")).encode()
    assert raw.startswith(b"data: " + first + b"\n\n")


def test_each_stream_event_arrives_as_its_own_chunk(server):
    response = requests.post(server.url + "/invocations", stream=True, timeout=60,
                             json={"inputs": "Hello", "stream": True, "parameters": {"max_new_tokens": 5}})
    chunks = [c for c in response.raw.read_chunked(decode_content=False)]
    assert len(chunks) == 5
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"\n\n") == 1 for c in chunks)


def test_ndjson_by_accept_header_is_one_json_object_per_line(server):
    response, raw = stream_raw(server.url, {"inputs": "Hello", "stream": True, "parameters": {"max_new_tokens": 4}},
                               headers={"Accept": "application/jsonlines"})
    assert response.headers["Content-Type"].startswith("application/jsonlines")
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    events = [json.loads(line) for line in lines[:-1]]
    assert events[-1]["generated_text"].startswith("Hello")


@pytest.mark.parametrize("prompt", ["The cheese maker said", JAPANESE, "  leading spaces", "中文提示：如何做网站？"])
def test_streamed_text_equals_non_streamed_text(server, prompt):
    parameters = {"max_new_tokens": 24, "return_full_text": False}
    expected = generate(server.url, prompt, **parameters)[0]["generated_text"]
    events = stream_events(server.url, prompt, **parameters)
    assert events[-1]["generated_text"] == expected
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == expected


def test_the_blog_token_iterator_reproduces_the_text_unchanged(server):
    """The TokenIterator of the AWS JumpStart streaming post, verbatim, over real stream bytes."""
    payload = {"inputs": JAPANESE, "parameters": {"max_new_tokens": 20}, "stream": True}
    response = requests.post(server.url + "/invocations", json=payload, stream=True, timeout=60)
    parts = ({"PayloadPart": {"Bytes": chunk}} for chunk in response.iter_content(chunk_size=None))
    text = "".join(BlogTokenIterator(parts))
    expected = generate(server.url, JAPANESE, max_new_tokens=20, return_full_text=False)[0]["generated_text"]
    assert text == expected


def test_generate_route_returns_a_bare_object_without_the_prompt(server):
    response = post(server.url, {"inputs": "Hello", "parameters": {"max_new_tokens": 3}}, path="/generate")
    body = response.json()
    assert isinstance(body, dict) and not body["generated_text"].startswith("Hello")
    assert response.headers["x-generated-tokens"] == "3"


def test_eos_ends_generation_as_a_special_token_outside_the_text(start_server, trained_tiny_model_dir):
    trained = start_server(model_dir=trained_tiny_model_dir)
    ended = 0
    for prompt in ["The endpoint is", "Cheese is made from", "A website needs", "The train to Kyoto"]:
        body = generate(trained.url, prompt, max_new_tokens=64, details=True, return_full_text=False)[0]
        tokens = body["details"]["tokens"]
        if body["details"]["finish_reason"] != "eos_token":
            continue
        ended += 1
        assert tokens[-1]["special"] and tokens[-1]["text"] not in body["generated_text"]
        assert "".join(t["text"] for t in tokens if not t["special"]) == body["generated_text"]
        events = stream_events(trained.url, prompt, max_new_tokens=64, return_full_text=False, details=True)
        assert events[-1]["token"]["special"] and events[-1]["details"]["finish_reason"] == "eos_token"
        assert events[-1]["generated_text"] == body["generated_text"]
    assert ended, "the trained demo model should end at least one of these answers with EOS"


def test_info_reports_the_auto_dtype_and_why(start_server):
    process = start_server(env={"DTYPE": "auto", "SLUICE_DEVICE": "cpu"})
    with urllib.request.urlopen(f"{process.url}/info", timeout=10) as response:
        info = json.load(response)
    expected, reason = select_dtype(Config.from_environ({"HF_MODEL_ID": "org/model"}), torch.device("cpu"))
    assert info["model_dtype"] == str(expected).replace("torch.", "")
    assert info["model_dtype_reason"] == reason and reason.startswith("auto: CPU")
    if torch.backends.mkldnn.is_available():  # every x86 CPU build of torch has oneDNN
        assert info["model_linear_kernels"].startswith("oneDNN-packed (")
    assert info["fused_prefill"].startswith("on (")  # the demo model passed the start-up check
