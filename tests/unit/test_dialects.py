"""Fast tier: every dialect through the real app, driver and service, over a fake engine.

One fault, one behaviour, whatever the client spoke (the table in the Errors section of docs/http-api.md):
a body that is not a request is an HTTP 422 even for a stream; a refused value, an overload or a
failed generation is the HTTP status without a stream and the last in-band event of an HTTP 200
stream with one (then ``[DONE]`` on OpenAI streams); ``deploy.TokenIterator`` raises the same
typed error for all three stream shapes; every refusal counts in ``/metrics``.
"""

from __future__ import annotations

import re

import pytest

from deploy import errors as deploy_errors
from deploy.stream import TokenIterator
from fake_engine import MAX_TOTAL_TOKENS, FakeEngine, in_process_client
from sluice.errors import GenerationError

MESSAGES = [{"role": "user", "content": "hi"}]

# Each dialect's body for "the same request", and how it names the tokens to generate.
DIALECTS = {
    "generate_stream": ("/generate_stream", lambda **p: {"inputs": "hi", "parameters": p}),
    "compat": ("/invocations", lambda **p: {"inputs": "hi", "parameters": p}),
    "chat": ("/v1/chat/completions", lambda **p: dict(_openai(p), messages=MESSAGES)),
    "completions": ("/v1/completions", lambda **p: dict(_openai(p), prompt="hi")),
}
OPENAI_NAMES = {"max_new_tokens": "max_tokens", "top_n_tokens": "top_logprobs"}


def _openai(parameters: dict) -> dict:
    return {OPENAI_NAMES.get(key, key): value for key, value in parameters.items()}


def request(dialect: str, stream: bool, **parameters):
    path, body = DIALECTS[dialect]
    payload = body(**parameters)
    if stream and dialect != "generate_stream":
        payload["stream"] = True
    if not stream and dialect == "generate_stream":
        path = "/generate"
    return path, payload


def stream_error(response) -> deploy_errors.ContainerError:
    """The typed error a deploy.TokenIterator raises reading this stream."""
    with pytest.raises(deploy_errors.ContainerError) as raised:
        list(TokenIterator([response.data]))
    return raised.value


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_refused_value_is_a_422_or_an_in_band_validation_error_in_every_dialect(dialect):
    client = in_process_client()
    path, body = request(dialect, stream=False, temperature=-1.0)
    response = client.post(path, json=body)
    assert response.status_code == 422 and response.get_json()["error_type"] == "validation"
    path, body = request(dialect, stream=True, temperature=-1.0)
    response = client.post(path, json=body)
    assert response.status_code == 200
    error = stream_error(response)
    assert isinstance(error, deploy_errors.ValidationError)
    assert "`temperature` must be strictly positive" in str(error)
    assert response.data.endswith(b"data: [DONE]\n\n") == (dialect in ("chat", "completions"))


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_body_that_is_not_a_request_is_an_http_422_even_for_a_stream(dialect):
    path, body = request(dialect, stream=True, max_new_tokens="many")
    response = in_process_client().post(path, json=body)
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("Failed to deserialize the JSON body into the target type")


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_overload_is_a_429_or_an_in_band_overloaded_error_in_every_dialect(dialect):
    client = in_process_client(slots=0)
    path, body = request(dialect, stream=False, max_new_tokens=2)
    response = client.post(path, json=body)
    assert (response.status_code, response.get_json()["error_type"]) == (429, "overloaded")
    path, body = request(dialect, stream=True, max_new_tokens=2)
    response = client.post(path, json=body)
    assert response.status_code == 200
    assert isinstance(stream_error(response), deploy_errors.OverloadedError)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_a_failed_generation_ends_every_stream_with_a_typed_generation_error(dialect):
    engine = FakeEngine(fail=GenerationError("the model step failed"))
    path, body = request(dialect, stream=True, max_new_tokens=4)
    response = in_process_client(engine).post(path, json=body)
    assert response.status_code == 200
    error = stream_error(response)
    assert isinstance(error, deploy_errors.GenerationError)
    assert "the model step failed" in str(error)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_refused_request_counts_in_metrics(dialect):
    client = in_process_client()
    for stream in (False, True):
        path, body = request(dialect, stream=stream, temperature=-1.0)
        client.post(path, json=body)
    text = client.get("/metrics").get_data(as_text=True)
    assert "tgi_request_count 2\n" in text
    assert 'tgi_request_failure{err="validation"} 2\n' in text


@pytest.mark.parametrize("body, message", [
    ({"max_tokens": 0}, "Input validation error: `max_tokens` must be strictly positive"),
    ({"max_completion_tokens": 0}, "Input validation error: `max_completion_tokens` must be strictly positive"),
    ({"max_tokens": "x"}, "Failed to deserialize the JSON body into the target type: max_tokens: invalid type: "
                          "string 'x', expected an integer >= 0"),
    ({"logprobs": True, "top_logprobs": 9}, "Input validation error: `top_logprobs` must be >= 0 and <= 5. Given: 9"),
    ({"top_p": 2.0}, "Input validation error: `top_p` must be > 0.0 and <= 1.0"),
    ({"seed": -1}, "Failed to deserialize the JSON body into the target type: seed: invalid type: "
                   "number `-1`, expected an integer >= 0"),
    ({"stop": 3}, "Failed to deserialize the JSON body into the target type: stop: invalid type: "
                  "number `3`, expected a sequence of strings"),
])
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
def test_openai_errors_name_the_fields_the_client_sent(route, body, message):
    payload = dict(body, messages=MESSAGES) if "chat" in route else dict(body, prompt="hi")
    response = in_process_client().post(route, json=payload)
    assert response.status_code == 422
    assert response.get_json()["error"] == message


def test_a_too_long_openai_prompt_is_named_by_its_own_fields():
    response = in_process_client().post("/v1/completions", json={"prompt": "x" * 100, "max_tokens": 100})
    assert response.get_json()["error"] == (
        f"Input validation error: `prompt` tokens + `max_tokens` must be <= {MAX_TOTAL_TOKENS}. "
        "Given: 100 `prompt` tokens and 100 `max_tokens`")


def test_tgi_errors_keep_tgis_field_names():
    client = in_process_client()
    response = client.post("/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": "x"}})
    assert response.get_json()["error"] == (
        "Failed to deserialize the JSON body into the target type: "
        "parameters.max_new_tokens: invalid type: string 'x', expected an integer >= 0")
    response = client.post("/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 0}})
    assert response.get_json()["error"] == "Input validation error: `max_new_tokens` must be strictly positive"


def test_completion_prompts_are_submitted_together_so_the_engine_batches_them():
    # The fake engine answers nobody until three sequences wait at once: prompts run one after
    # another would never finish (and end in the request timeout's 424).
    client = in_process_client(FakeEngine(release_at=3), request_timeout=5.0)
    response = client.post("/v1/completions", json={"prompt": ["a", "b", "c"], "max_tokens": 2})
    assert response.status_code == 200
    assert [c["text"] for c in response.get_json()["choices"]] == [" t1 t2"] * 3
    assert response.get_json()["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}


def test_a_chat_template_error_is_an_http_422_even_for_a_stream():
    """TGI renders the template before its stream starts: a model without one answers 422."""
    response = in_process_client(chat_template=None).post("/v1/chat/completions",
                                                          json={"messages": MESSAGES, "stream": True})
    assert (response.status_code, response.get_json()) == (
        422, {"error": "Template error: template not found", "error_type": "template_error"})


def test_streams_of_every_dialect_carry_the_same_tokens():
    client = in_process_client()
    texts = {}
    for dialect in DIALECTS:
        path, body = request(dialect, stream=True, max_new_tokens=3)
        texts[dialect] = "".join(TokenIterator([client.post(path, json=body).data]))
    assert set(texts.values()) == {" t1 t2 t3"}, texts


def test_the_openai_error_event_names_its_type_for_typed_clients():
    response = in_process_client(slots=0).post("/v1/chat/completions", json={"messages": MESSAGES, "stream": True})
    first = re.match(rb"data: (.*)\n\n", response.data).group(1)
    assert first == b'{"error":{"message":"Model is overloaded","http_status_code":429,"type":"overloaded"}}'
