"""The serving contract on the vLLM engine (SLUICE_ENGINE=vllm), against ONE shared server.

The same protocol as the embedded engine: TGI's SSE parsed by the blog's TokenIterator and by
deploy.TokenIterator, streamed text == non-streamed text byte for byte, TGI's details, exact 422s
for what vLLM cannot do, chat, text_generation.Client, cancellation that aborts the vLLM request,
and 429 beyond MAX_CONCURRENT_REQUESTS. Skips when .venv-vllm is absent (make install-vllm).
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import re
import time

import jsonschema
import pytest
import requests
import text_generation

from blog_token_iterator import BlogTokenIterator
from deploy import TokenIterator
from grammar_cases import BAD_GRAMMARS, REGEX, SAMPLED, SCHEMA, TOOLS, assert_valid_call, chat, constrained, in_parallel
from http_client import generate, hang_up_and_wait_for_log, post, sse_events, stream_events, stream_raw

pytestmark = pytest.mark.vllm

JAPANESE = "チーズの作り方を教えてください。"
PROMPTS = ["The cheese maker said", JAPANESE, "中文提示：如何做网站？"]


def _gauge(url: str, name: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ping_was_503_while_vllm_started_then_200(vllm_server):
    assert vllm_server.first_ping == 503
    assert requests.get(vllm_server.url + "/ping", timeout=10).status_code == 200


def test_info_reports_the_vllm_engine_its_dtype_and_device(vllm_server):
    info = requests.get(vllm_server.url + "/info", timeout=10).json()
    assert info["engine"] == "vllm" and info["router"] == "sluice"
    assert info["model_dtype"] == "bfloat16" and info["model_device_type"] == "cpu"
    assert info["model_dtype_reason"] == "auto: vLLM's CPU kernels run bf16"  # why, as the embedded engine says
    assert info["max_input_tokens"] < info["max_total_tokens"] < info["max_batch_total_tokens"]  # vLLM's KV tokens
    assert info["fused_prefill"].startswith("vllm (")  # SLUICE_FUSED_PREFILL is the own engine's


def test_tgis_gauges_count_a_running_vllm_request(vllm_server):
    with futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(stream_events, vllm_server.url, "Tell me a story", max_new_tokens=300)
        deadline = time.monotonic() + 30
        while not _gauge(vllm_server.url, "tgi_batch_current_size"):
            assert time.monotonic() < deadline and not running.done(), "the running request never showed"
            time.sleep(0.02)
        assert len(running.result()) == 300
    assert _gauge(vllm_server.url, "tgi_batch_current_size") == 0 and _gauge(vllm_server.url, "tgi_queue_size") == 0


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "seed": 7}])
def test_streamed_text_equals_non_streamed_text(vllm_server, prompt, sampling):
    parameters = {"max_new_tokens": 24, "return_full_text": False, **sampling}
    expected = generate(vllm_server.url, prompt, **parameters)[0]["generated_text"]
    events = stream_events(vllm_server.url, prompt, **parameters)
    assert len(events) == 24
    assert events[-1]["generated_text"] == expected
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == expected


def test_the_blog_and_deploy_token_iterators_reproduce_the_text(vllm_server):
    payload = {"inputs": JAPANESE, "parameters": {"max_new_tokens": 20}, "stream": True}
    expected = generate(vllm_server.url, JAPANESE, max_new_tokens=20, return_full_text=False)[0]["generated_text"]
    response = requests.post(vllm_server.url + "/invocations", json=payload, stream=True, timeout=60)
    parts = ({"PayloadPart": {"Bytes": chunk}} for chunk in response.iter_content(chunk_size=None))
    assert "".join(BlogTokenIterator(parts)) == expected
    response = requests.post(vllm_server.url + "/invocations", json=payload, stream=True, timeout=60)
    assert "".join(TokenIterator(response.iter_content(chunk_size=None))) == expected


def test_details_have_tgis_shape_with_top_tokens_and_prompt_logprobs(vllm_server):
    body = generate(vllm_server.url, "Hello world", path="/generate", max_new_tokens=5, details=True,
                    top_n_tokens=3, decoder_input_details=True)
    details = body["details"]
    assert details["finish_reason"] == "length" and details["generated_tokens"] == 5
    assert details["seed"] is None  # greedy
    prompt_ids = [t["id"] for t in post(vllm_server.url, {"inputs": "Hello world"}, path="/tokenize").json()]
    assert [t["id"] for t in details["prefill"]] == prompt_ids
    assert details["prefill"][0]["logprob"] is None and all(t["logprob"] < 0 for t in details["prefill"][1:])
    assert len(details["tokens"]) == 5 and all(t["logprob"] <= 0 for t in details["tokens"])
    assert len(details["top_tokens"]) == 5 and all(len(top) == 3 for top in details["top_tokens"])
    # greedy: the chosen token is the most likely one
    assert all(top[0]["logprob"] >= token["logprob"] - 1e-6
               for top, token in zip(details["top_tokens"], details["tokens"], strict=True))


def test_a_seed_reproduces_a_sample_and_is_reported(vllm_server):
    parameters = dict(do_sample=True, seed=1234, temperature=0.9, max_new_tokens=16, details=True)
    first = generate(vllm_server.url, "Cheese", path="/generate", **parameters)
    again = generate(vllm_server.url, "Cheese", path="/generate", **parameters)
    assert first["generated_text"] == again["generated_text"] and first["details"]["seed"] == 1234


def test_penalties_and_truncate_are_accepted(vllm_server):
    body = generate(vllm_server.url, "one two three four five six", path="/generate", max_new_tokens=6,
                    repetition_penalty=1.3, frequency_penalty=0.5, truncate=3, details=True)
    assert body["details"]["generated_tokens"] == 6


def test_a_stop_sequence_ends_the_answer_and_is_included(vllm_server):
    free = generate(vllm_server.url, "The cheese", path="/generate", max_new_tokens=12, details=True)
    texts = [t["text"] for t in free["details"]["tokens"]]
    stop_at = next(i for i, text in enumerate(texts) if i >= 2 and text.strip())
    stop = texts[stop_at]
    stopped = generate(vllm_server.url, "The cheese", path="/generate", max_new_tokens=12, details=True, stop=[stop])
    assert stopped["details"]["finish_reason"] == "stop_sequence"
    assert stopped["generated_text"].endswith(stop) and stopped["details"]["generated_tokens"] <= stop_at + 1
    assert free["generated_text"].startswith(stopped["generated_text"])


def test_best_of_runs_sampled_sequences_and_returns_the_others(vllm_server):
    body = generate(vllm_server.url, "Cheese", path="/generate", best_of=2, do_sample=True, max_new_tokens=6,
                    details=True)
    assert len(body["details"]["best_of_sequences"]) == 1 and body["details"]["generated_tokens"] == 6


@pytest.mark.parametrize("parameters, name, given", [
    ({"typical_p": 0.5}, "typical_p", "0.5"), ({"watermark": True}, "watermark", "true")])
def test_parameters_vllm_cannot_honour_are_a_422_naming_the_engine(vllm_server, parameters, name, given):
    expected = {"error": f"Input validation error: `{name}` is not supported by the vllm engine "
                         f"(SLUICE_ENGINE=vllm). Given: {given}", "error_type": "validation"}
    response = post(vllm_server.url, {"inputs": "Hi", "parameters": parameters}, path="/generate")
    assert response.status_code == 422 and response.json() == expected
    _, raw = stream_raw(vllm_server.url, {"inputs": "Hi", "parameters": parameters}, path="/generate_stream")
    assert sse_events(raw) == [expected]  # in band, as TGI's generate_stream


def test_chat_completions_through_the_models_template(vllm_server):
    messages = [{"role": "user", "content": "How do I make cheese?"}]
    body = post(vllm_server.url, {"messages": messages, "max_tokens": 8}, path="/v1/chat/completions").json()
    assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] == 8
    _, raw = stream_raw(vllm_server.url, {"messages": messages, "max_tokens": 8, "stream": True},
                        path="/v1/chat/completions")
    assert raw.endswith(b"data: [DONE]\n\n")
    streamed = "".join(TokenIterator([raw]))
    assert streamed == body["choices"][0]["message"]["content"]


def test_text_generation_client(vllm_server):
    client = text_generation.Client(vllm_server.url, timeout=60)
    response = client.generate("The cheese", max_new_tokens=12)
    assert response.details.generated_tokens == 12
    streamed = list(client.generate_stream("The cheese", max_new_tokens=12))
    assert "".join(r.token.text for r in streamed if not r.token.special) == response.generated_text


def test_a_client_that_disconnects_aborts_the_vllm_request(vllm_server):
    hang_up_and_wait_for_log(vllm_server, "vLLM request aborted")
    deadline = time.monotonic() + 10
    while _gauge(vllm_server.url, "sluice_requests_in_flight") or _gauge(vllm_server.url, "tgi_batch_current_size"):
        assert time.monotonic() < deadline, "the hung-up request still holds its slot or vLLM row"
        time.sleep(0.05)


def test_beyond_max_concurrent_requests_is_429_then_the_slots_come_back(vllm_server):
    overloaded = {"error": "Model is overloaded", "error_type": "overloaded"}

    def plain(_):
        response = requests.post(vllm_server.url + "/invocations", timeout=60,
                                 json={"inputs": "Hello", "parameters": {"max_new_tokens": 200}})
        return response.status_code, response.json()

    with futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(plain, range(12)))
    assert {status for status, _ in answers} == {200, 429}
    assert all(body == overloaded for status, body in answers if status == 429)
    assert all(body[0]["generated_text"].startswith("Hello") for status, body in answers if status == 200)
    assert requests.post(vllm_server.url + "/invocations", json={"inputs": "x"}, timeout=30).status_code == 200


# --- structured output: the same grammars, through vLLM's llguidance backend ---------------------

def test_sampled_json_schema_and_regex_answers_on_vllm_all_validate(vllm_server):
    answers = in_parallel(lambda seed: constrained(vllm_server.url, {"type": "json", "value": SCHEMA}, seed=seed),
                          range(20), workers=4)
    for answer in answers:
        jsonschema.validate(json.loads(answer["generated_text"]), SCHEMA)
        assert answer["details"]["finish_reason"] == "eos_token"
    answers = in_parallel(lambda seed: constrained(vllm_server.url, {"type": "regex", "value": REGEX}, seed=seed),
                          range(20), workers=4)
    for answer in answers:
        assert re.fullmatch(REGEX, answer["generated_text"]), answer["generated_text"]


def test_a_constrained_vllm_request_batches_with_an_unconstrained_stream(vllm_server):
    with futures.ThreadPoolExecutor(2) as pool:
        free = pool.submit(stream_events, vllm_server.url, "Story:", max_new_tokens=48, do_sample=True, seed=1,
                           details=True)
        fixed = constrained(vllm_server.url, {"type": "json", "value": SCHEMA}, seed=2)
        jsonschema.validate(json.loads(fixed["generated_text"]), SCHEMA)
        assert free.result()[-1]["details"]["generated_tokens"] == 48


def test_a_streamed_constrained_vllm_answer_equals_the_non_streamed_one(vllm_server):
    grammar = {"type": "json", "value": SCHEMA}
    whole = constrained(vllm_server.url, grammar, seed=11)
    events = stream_events(vllm_server.url, "Tell me about cheese.", path="/generate_stream",
                           **dict(SAMPLED, seed=11, grammar=grammar, details=True))
    assert events[-1]["generated_text"] == whole["generated_text"]
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == whole["generated_text"]


def test_named_tool_choice_on_vllm_gives_schema_valid_calls(vllm_server):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    for answer in in_parallel(lambda seed: chat(vllm_server.url, seed=seed, tools=TOOLS, tool_choice=choice),
                              range(8), workers=4):
        assert answer["finish_reason"] == "tool_calls"
        [call] = answer["message"]["tool_calls"]
        assert_valid_call(call, {"get_weather"})


@pytest.mark.parametrize("grammar, text", BAD_GRAMMARS[2:], ids=[str(i) for i in range(len(BAD_GRAMMARS) - 2)])
def test_a_bad_grammar_is_the_same_422_on_both_engines(vllm_server, server, grammar, text):
    answers = [post(url, {"inputs": "x", "parameters": {"grammar": grammar}}, path="/generate")
               for url in (vllm_server.url, server.url)]
    assert [(a.status_code, a.json()) for a in answers] == [(422, {"error": text, "error_type": "validation"})] * 2
