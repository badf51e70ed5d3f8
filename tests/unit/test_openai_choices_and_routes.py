"""Fast tier: OpenAI's ``n`` and ``logit_bias`` (never accepted and ignored) and the ``route=``
custom attribute, through the real app, driver and service over a fake engine (the real model:
server/test_openai_choices, server/test_invocation_routes)."""

from __future__ import annotations

import pytest

from fake_engine import FakeEngine, in_process_client

MESSAGES = [{"role": "user", "content": "hi"}]
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def test_n_choices_are_separate_requests_each_seeded_its_own_way():
    engine = FakeEngine()
    client = in_process_client(engine)
    answer = client.post("/v1/chat/completions", json={"messages": MESSAGES, "n": 2, "seed": 7,
                                                       "temperature": 0.9, "max_tokens": 3}).get_json()
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert [v.request.sampling.seed for v in engine.submitted] == [7, 8]
    assert answer["usage"]["prompt_tokens"] == engine.submitted[0].input_length  # the prompt once
    assert answer["usage"]["completion_tokens"] == 6


def test_completions_give_n_choices_per_prompt_in_prompt_order():
    engine = FakeEngine()
    client = in_process_client(engine)
    answer = client.post("/v1/completions", json={"prompt": ["ab", "cdef"], "n": 2, "max_tokens": 2}).get_json()
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2, 3]
    assert [v.request.inputs for v in engine.submitted].count("ab") == 2
    assert answer["usage"]["prompt_tokens"] == 2 + 4


@pytest.mark.parametrize("body,message", [
    ({"n": 3}, "`n` must be > 0 and <= 2. Given: 3"),
    ({"n": 0}, "`n` must be > 0 and <= 2. Given: 0"),
    ({"n": 2, "stream": True}, "`n` != 1 is not supported when streaming tokens"),
    ({"logit_bias": {"5": 101}}, "`logit_bias` values must be >= -100 and <= 100. Given: 101.0 for token 5"),
])
def test_n_and_logit_bias_out_of_bounds_are_refused_naming_the_field(body, message):
    response = in_process_client().post("/v1/chat/completions", json=dict(body, messages=MESSAGES))
    if body.get("stream"):
        assert response.status_code == 200 and message.encode() in response.data
    else:
        assert response.status_code == 422 and response.get_json()["error"] == f"Input validation error: {message}"


@pytest.mark.parametrize("logit_bias,message", [
    ([1, 2], "logit_bias: invalid type: a sequence, expected a map"),
    ({"hello": 1}, "logit_bias: invalid value: string 'hello', expected a token id"),
    ({"5": "x"}, "logit_bias.5: invalid type: string 'x', expected a number"),
    ({"5": None}, "logit_bias.5: invalid type: null, expected a number"),
])
def test_a_logit_bias_that_is_not_a_map_of_token_ids_to_numbers_is_a_422(logit_bias, message):
    response = in_process_client().post("/v1/completions", json={"prompt": "hi", "logit_bias": logit_bias})
    assert response.status_code == 422 and message in response.get_json()["error"]


def test_logit_bias_reaches_the_engine_as_token_ids():
    engine = FakeEngine()
    in_process_client(engine).post("/v1/completions", json={"prompt": "hi", "logit_bias": {"7": -100, "3": 2.5}})
    assert engine.submitted[-1].request.sampling.logit_bias == ((3, 2.5), (7, -100.0))


def test_route_sends_an_invocations_body_to_the_named_route_beside_other_attributes():
    client = in_process_client()
    generate = client.post("/invocations", json={"inputs": "hi"},
                           headers={ATTRIBUTES: "x-use-cache=0, route=/generate"}).get_json()
    assert isinstance(generate, dict) and "generated_text" in generate  # /generate's bare object, not a list
    completion = client.post("/invocations", json={"messages": MESSAGES},
                             headers={ATTRIBUTES: "route=/v1/completions"})
    assert completion.status_code == 422 and "prompt" in completion.get_json()["error"]  # read as completions


def test_an_unknown_route_is_a_404_naming_the_routes_there_are():
    response = in_process_client().post("/invocations", json={"inputs": "hi"}, headers={ATTRIBUTES: "route=/v2/x"})
    body = response.get_json()
    assert response.status_code == 404 and body["error_type"] == "not_found"
    assert "route=/v2/x" in body["error"] and "/v1/chat/completions" in body["error"]
