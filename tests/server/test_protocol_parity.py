"""Real clients, unchanged, against the real server: text-generation, huggingface_hub, curl -N."""

from __future__ import annotations

import concurrent.futures as futures
import json
import subprocess

import pytest
import requests
import text_generation
from huggingface_hub import InferenceClient
from text_generation import errors as tg_errors

from deploy import errors as deploy_errors
from deploy.stream import TokenIterator
from http_client import generate, metric, post, stream_events, wait_for

MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How do I make cheese?"}]


def test_text_generation_client_generate_matches_invocations(server):
    client = text_generation.Client(server.url, timeout=60)
    response = client.generate("The cheese", max_new_tokens=12)
    expected = generate(server.url, "The cheese", max_new_tokens=12, return_full_text=False)[0]["generated_text"]
    assert response.generated_text == expected
    assert response.details.generated_tokens == 12 and len(response.details.tokens) == 12
    streamed = [r for r in client.generate_stream("The cheese", max_new_tokens=12)]
    assert "".join(r.token.text for r in streamed) == expected
    assert streamed[-1].generated_text == expected and streamed[-1].details.finish_reason.value == "length"


def test_text_generation_client_raises_its_validation_error(server):
    client = text_generation.Client(server.url, timeout=60)
    with pytest.raises(tg_errors.ValidationError, match="`max_new_tokens` must be strictly positive"):
        client.generate("x", max_new_tokens=0)
    with pytest.raises(tg_errors.ValidationError):
        list(client.generate_stream("x", max_new_tokens=0))


def test_text_generation_client_raises_overloaded(start_server):
    small = start_server(env={"MAX_CONCURRENT_REQUESTS": "1", "RESPONSE_CACHE_SIZE": "0"})
    client = text_generation.Client(small.url, timeout=60)

    def outcome(call):
        try:
            call()
            return "served"
        except tg_errors.OverloadedError:
            return "overloaded"

    with futures.ThreadPoolExecutor(8) as pool:
        plain = list(pool.map(lambda _: outcome(lambda: client.generate("x", max_new_tokens=100)), range(8)))
        streams = list(pool.map(lambda _: outcome(lambda: list(client.generate_stream("x", max_new_tokens=100))),
                                range(8)))
    assert set(plain) == {"served", "overloaded"}
    assert set(streams) == {"served", "overloaded"}


def test_text_generation_client_raises_generation_error_when_generation_fails_mid_stream(start_server):
    # A real failure: the request outlives the server's SAGEMAKER_MODEL_SERVER_TIMEOUT.
    strict = start_server(env={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})
    client = text_generation.Client(strict.url, timeout=60)
    received = []
    with pytest.raises(tg_errors.GenerationError, match="SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        for response in client.generate_stream("Tell me a long story", max_new_tokens=2000):
            received.append(response.token.text)
    assert received, "tokens should have streamed before the failure"
    with pytest.raises(tg_errors.GenerationError):
        client.generate("Tell me a long story", max_new_tokens=2000)
    assert client.generate("Short", max_new_tokens=2).details.generated_tokens == 2


def test_a_tiny_temperature_samples_like_greedy_instead_of_failing(server):
    greedy = generate(server.url, "The cheese", max_new_tokens=8, return_full_text=False)[0]["generated_text"]
    cold = generate(server.url, "The cheese", max_new_tokens=8, return_full_text=False, temperature=1e-30, seed=1)
    assert cold[0]["generated_text"] == greedy


def test_huggingface_hub_text_generation_streams_with_details(server):
    client = InferenceClient(base_url=server.url)
    expected = generate(server.url, "The cheese", max_new_tokens=10, return_full_text=False)[0]["generated_text"]
    outputs = list(client.text_generation("The cheese", max_new_tokens=10, stream=True, details=True))
    assert "".join(o.token.text for o in outputs) == expected
    assert outputs[-1].details.finish_reason == "length"
    # the client sends no return_full_text: the endpoint's default (true on `/`, as TGI) applies
    assert client.text_generation("The cheese", max_new_tokens=10) == "The cheese" + expected
    assert client.text_generation("The cheese", max_new_tokens=10, return_full_text=False) == expected


def test_huggingface_hub_chat_stream_equals_non_streamed_chat(server):
    client = InferenceClient(base_url=server.url)
    whole = client.chat_completion(MESSAGES, max_tokens=16)
    text = whole.choices[0].message.content
    chunks = list(client.chat_completion(MESSAGES, max_tokens=16, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert whole.usage.completion_tokens == 16 and whole.choices[0].finish_reason == "length"


def test_chat_stream_is_tgi_shaped_and_ends_with_done(server):
    body = {"model": "tgi", "messages": MESSAGES, "max_tokens": 5, "stream": True,
            "stream_options": {"include_usage": True}}
    raw = requests.post(server.url + "/v1/chat/completions", json=body, timeout=60).content
    blocks = raw.split(b"\n\n")
    assert blocks[-1] == b"" and blocks[-2] == b"data: [DONE]"
    chunks = [json.loads(b[len(b"data: "):]) for b in blocks[:-2]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


def test_chat_prompt_uses_the_models_template(server, tiny_model_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rendered = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    answer = post(server.url, {"messages": MESSAGES, "max_tokens": 4}, path="/v1/chat/completions").json()
    assert answer["usage"]["prompt_tokens"] == len(ids)
    assert answer["choices"][0]["finish_reason"] == "length" and answer["usage"]["completion_tokens"] == 4


def test_invocations_routes_by_body_shape(server):
    chat = post(server.url, {"messages": MESSAGES, "max_tokens": 3}).json()
    assert chat["object"] == "chat.completion"
    completion = post(server.url, {"prompt": "Once upon", "max_tokens": 3}).json()
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"]
    assert isinstance(post(server.url, {"inputs": "Once upon"}).json(), list)


def test_completions_reject_suffix_and_big_batches(server):
    response = post(server.url, {"prompt": "x", "suffix": "y"}, path="/v1/completions")
    assert response.status_code == 422 and response.json()["error_type"] == "suffix not supported"
    response = post(server.url, {"prompt": ["a"] * 5}, path="/v1/completions")
    assert response.status_code == 422 and response.json()["error_type"] == "batch size exceeded"


def test_curl_shows_tokens_as_they_are_produced(server):
    proc = subprocess.Popen(["curl", "-sN", server.url + "/generate_stream", "-H", "Content-Type: application/json",
                             "-d", json.dumps({"inputs": "Tell me a story", "parameters": {"max_new_tokens": 400}})],
                            stdout=subprocess.PIPE)
    first = proc.stdout.readline()
    # Ordering, not timing: when curl prints the first token, the request has not completed.
    completed_at_first_token = metric(server.url, "tgi_request_success")
    rest = proc.stdout.read()
    proc.wait()
    assert first.startswith(b"data: {")
    events = [line for line in (first + rest).split(b"\n") if line.startswith(b"data: ")]
    assert len(events) == 400
    wait_for(lambda: metric(server.url, "tgi_request_success") > completed_at_first_token, "the stream completes")


def test_info_models_tokenize_and_health(server, tiny_model_dir):
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["model_id"] == str(tiny_model_dir)
    assert info["max_input_tokens"] < info["max_total_tokens"] and info["max_stop_sequences"] == 4
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    assert requests.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"] == tiny_model_dir.name
    tokens = post(server.url, {"inputs": "Hello world"}, path="/tokenize").json()
    assert "".join(t["text"] for t in tokens) == "Hello world"
    assert all("Hello world"[t["start"]:t["stop"]] == t["text"] for t in tokens)


def test_generate_responses_carry_tgis_headers(server):
    response = post(server.url, {"inputs": "Hello", "parameters": {"max_new_tokens": 4}}, path="/generate")
    for header in ("x-compute-type", "x-compute-time", "x-prompt-tokens", "x-generated-tokens", "x-time-per-token",
                   "x-queue-time", "x-inference-time"):
        assert header in response.headers
    assert response.headers["x-generated-tokens"] == "4"


def _metric(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values)


def test_metrics_counters_move_after_requests(server):
    before = _metric(server.url, "tgi_request_count"), _metric(server.url, "tgi_request_success")
    failures = _metric(server.url, "tgi_request_failure")
    generate(server.url, "Count me", max_new_tokens=2)
    post(server.url, {"inputs": ""})
    after = _metric(server.url, "tgi_request_count"), _metric(server.url, "tgi_request_success")
    assert after[0] == before[0] + 2 and after[1] == before[1] + 1
    assert _metric(server.url, "tgi_request_failure") == failures + 1
    assert _metric(server.url, "tgi_request_generated_tokens_count") > 0
    assert "tgi_batch_current_size" in requests.get(server.url + "/metrics", timeout=10).text


def test_first_token_and_inter_token_latencies_are_observed_once_per_token(server):
    names = "sluice_time_to_first_token_seconds_count", "sluice_inter_token_latency_seconds_count"
    before = [_metric(server.url, name) for name in names]
    events = stream_events(server.url, "Time every token of this answer", max_new_tokens=5)
    assert len(events) == 5
    assert [_metric(server.url, name) for name in names] == [before[0] + 1, before[1] + 4]
    assert _metric(server.url, "sluice_inter_token_latency_seconds_sum") > 0


def test_cache_serves_repeats_and_honours_x_use_cache_0(start_server):
    cached = start_server()
    body = {"inputs": "Surprise me", "parameters": {"do_sample": True, "max_new_tokens": 16}}
    first = post(cached.url, body)
    second = post(cached.url, body)
    assert first.headers["x-sluice-cache"] == "miss" and second.headers["x-sluice-cache"] == "hit"
    assert first.json() == second.json()
    fresh = post(cached.url, body, headers={"x-use-cache": "0"})
    assert fresh.headers["x-sluice-cache"] == "miss" and fresh.json() != first.json()
    via_sagemaker = post(cached.url, body, headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=1,x-use-cache=0"})
    assert via_sagemaker.headers["x-sluice-cache"] == "miss"
    replay = requests.post(cached.url + "/invocations", json=dict(body, stream=True), timeout=60)
    assert replay.headers["x-sluice-cache"] == "hit"
    assert _metric(cached.url, "sluice_cache_hits") == 2
    error = post(cached.url, {"inputs": ""})
    assert error.status_code == 422 and post(cached.url, {"inputs": ""}).status_code == 422


def test_api_key_guards_inference_routes_only(start_server):
    guarded = start_server(env={"API_KEY": "s3cret"})
    assert post(guarded.url, {"inputs": "x"}).status_code == 401
    assert post(guarded.url, {"inputs": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(guarded.url, {"inputs": "x", "parameters": {"max_new_tokens": 1}},
                headers={"Authorization": "Bearer s3cret"}).status_code == 200
    for path in ("/ping", "/health", "/info", "/metrics"):
        assert requests.get(guarded.url + path, timeout=10).status_code == 200


@pytest.mark.parametrize("path, body", [
    ("/generate_stream", {"inputs": "Hi", "parameters": {"temperature": -1.0}}),
    ("/v1/chat/completions", {"messages": MESSAGES, "temperature": -1.0, "stream": True}),
    ("/v1/completions", {"prompt": "Hi", "temperature": -1.0, "stream": True}),
])
def test_a_refused_stream_raises_the_same_typed_error_from_every_dialect(server, path, body):
    """TGI's rule in every dialect: a value refused on a stream is an in-band event of an HTTP 200
    stream, which deploy.TokenIterator turns into deploy.errors.ValidationError."""
    response = requests.post(server.url + path, json=body, stream=True, timeout=60)
    assert response.status_code == 200
    with pytest.raises(deploy_errors.ValidationError, match="`temperature` must be strictly positive"):
        list(TokenIterator(response.iter_content(chunk_size=None)))
