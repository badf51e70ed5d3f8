"""Hostile input at the application level: exact JSON 4xx answers, never a 500, HTML or invalid JSON.

Parse-level problems (nesting past serde_json's limit, lone surrogates, NaN/Infinity literals) are
TGI's 400 `bad_request`, the same on every route and in every field, because TGI's parser refuses
them before any route sees the body. Well-formed bodies of the wrong shape are 422 `validation`.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import requests

from http_client import generate, post, sse_events, stream_raw
from sluice.http.app import create_app
from sluice.config import Config, TokenLimits
from sluice.errors import ValidationError
from sluice.wire.framing import dump_json
from sluice.serving.validation import Validator

JSON = {"Content-Type": "application/json"}
TOO_DEEP = {"error": "Failed to parse the request body as JSON: recursion limit exceeded", "error_type": "bad_request"}
LONE_SURROGATE = {"error": "Failed to parse the request body as JSON: lone surrogate in hex escape",
                  "error_type": "bad_request"}
DESERIALIZE = "Failed to deserialize the JSON body into the target type: "


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, which are not JSON (serde_json and browsers refuse them)."""
    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def post_raw(url: str, path: str, raw: bytes, headers: dict | None = None) -> requests.Response:
    return requests.post(url + path, data=raw, headers=dict(JSON, **(headers or {})), timeout=60)


def assert_json_error(response: requests.Response, status: int, body: dict) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert strict_json(response.text) == body


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


DEEP_BODIES = [
    ("100k deep list", "/invocations", nested(100_000)),
    ("50k deep in parameters", "/invocations", b'{"inputs":"x","parameters":{"a":' + nested(50_000) + b"}}"),
    ("50k deep on generate_stream", "/generate_stream", b'{"inputs":"x","parameters":{"a":' + nested(50_000) + b"}}"),
    ("900 deep: parses in Python, past serde's limit", "/generate", b'{"inputs":"x","x":' + nested(900) + b"}"),
    ("128 deep: serde's first refused level", "/generate", b'{"inputs":"x","x":' + nested(127) + b"}"),
    ("deep chat message", "/v1/chat/completions", b'{"messages":[{"role":"user","content":"hi","x":' + nested(40_000) + b"}]}"),
]


@pytest.mark.parametrize("name, path, raw", DEEP_BODIES, ids=[d[0] for d in DEEP_BODIES])
def test_json_nested_too_deep_is_a_400(server, name, path, raw):
    assert_json_error(post_raw(server.url, path, raw), 400, TOO_DEEP)


def test_json_nested_as_deep_as_serde_allows_is_served(server):
    raw = b'{"inputs":"x","parameters":{"max_new_tokens":1},"x":' + nested(126) + b"}"  # 127 levels in all
    response = post_raw(server.url, "/generate", raw)
    assert response.status_code == 200 and "generated_text" in response.json()


@pytest.mark.parametrize("literal, problem", [
    (b"NaN", "NaN is not a JSON value"), (b"Infinity", "Infinity is not a JSON value"),
    (b"-Infinity", "-Infinity is not a JSON value"), (b"1e400", "number out of range: 1e400")])
def test_non_json_numbers_are_a_400(server, literal, problem):
    raw = b'{"inputs":"x","parameters":{"temperature":' + literal + b"}}"
    assert_json_error(post_raw(server.url, "/generate", raw), 400, {
        "error": "Failed to parse the request body as JSON: " + problem, "error_type": "bad_request"})


SURROGATE = b'"\\ud800"'
LONE_SURROGATES = [
    ("chat model", "/v1/chat/completions", b'{"model":' + SURROGATE + b',"messages":[{"role":"user","content":"hi"}]}'),
    ("completions model", "/v1/completions", b'{"model":' + SURROGATE + b',"prompt":"hi"}'),
    ("chat model on invocations", "/invocations", b'{"model":' + SURROGATE + b',"messages":[{"role":"user","content":"hi"}]}'),
    ("chat content", "/v1/chat/completions", b'{"messages":[{"role":"user","content":' + SURROGATE + b"}]}"),
    ("chat content part", "/v1/chat/completions",
     b'{"messages":[{"role":"user","content":[{"type":"text","text":' + SURROGATE + b"}]}]}"),
    ("chat stop", "/v1/chat/completions", b'{"messages":[{"role":"user","content":"hi"}],"stop":' + SURROGATE + b"}"),
    ("completions prompt", "/v1/completions", b'{"prompt":' + SURROGATE + b"}"),
    ("tokenize inputs", "/tokenize", b'{"inputs":' + SURROGATE + b"}"),
    ("generate inputs", "/generate", b'{"inputs":' + SURROGATE + b"}"),
    ("generate_stream inputs", "/generate_stream", b'{"inputs":' + SURROGATE + b"}"),
    ("invocations inputs", "/invocations", b'{"inputs":' + SURROGATE + b"}"),
    ("stop sequence", "/generate", b'{"inputs":"x","parameters":{"stop":[' + SURROGATE + b"]}}"),
    ("trailing surrogate", "/generate", b'{"inputs":"\\udc00"}'),
    ("surrogate in a key", "/generate", b'{"inputs":"x",' + SURROGATE + b":1}"),
]


@pytest.mark.parametrize("name, path, raw", LONE_SURROGATES, ids=[s[0] for s in LONE_SURROGATES])
def test_lone_surrogate_is_the_same_400_everywhere(server, name, path, raw):
    assert_json_error(post_raw(server.url, path, raw), 400, LONE_SURROGATE)


def test_surrogate_pairs_and_escaped_backslashes_are_text(server):
    response = post_raw(server.url, "/tokenize", b'{"inputs":"cheese \\ud83e\\uddc0"}')
    assert response.status_code == 200 and response.json()[-1]["text"] == "\U0001f9c0"
    response = post_raw(server.url, "/v1/chat/completions",
                        b'{"model":"\\\\ud800","messages":[{"role":"user","content":"hi"}],"max_tokens":1}')
    assert response.status_code == 200 and response.json()["model"] == "\\ud800"


def chat_error(field_and_problem: str) -> dict:
    return {"error": DESERIALIZE + field_and_problem, "error_type": "validation"}


BAD_MESSAGES = [
    ("text is a number", [{"role": "user", "content": [{"type": "text", "text": 5}]}],
     "messages[0].content[0].text: invalid type: number `5`, expected a string"),
    ("text is null", [{"role": "user", "content": [{"type": "text", "text": None}]}],
     "messages[0].content[0].text: invalid type: null, expected a string"),
    ("text missing", [{"role": "user", "content": [{"type": "text"}]}],
     "messages[0].content[0]: missing field `text`"),
    ("part is a string", [{"role": "user", "content": ["hi", 5]}],
     "messages[0].content[0]: invalid type: string 'hi', expected a map"),
    ("part without type", [{"role": "user", "content": [{"text": "hi"}]}],
     "messages[0].content[0]: missing field `type`"),
    ("part type unknown", [{"role": "user", "content": [{"type": "audio", "text": "hi"}]}],
     "messages[0].content[0].type: unknown variant `audio`, expected `text` or `image_url`"),
    ("part type a list", [{"role": "user", "content": [{"type": ["text"], "text": "hi"}]}],
     "messages[0].content[0].type: invalid type: a sequence, expected a string"),
    ("content a map", [{"role": "user", "content": {"text": "hi"}}],
     "messages[0].content: invalid type: a map, expected a string or a sequence of content parts"),
    ("content a number", [{"role": "system", "content": "ok"}, {"role": "user", "content": 7}],
     "messages[1].content: invalid type: number `7`, expected a string or a sequence of content parts"),
    ("role a number", [{"role": 5, "content": "hi"}], "messages[0].role: invalid type: number `5`, expected a string"),
    ("role null", [{"role": None, "content": "hi"}], "messages[0].role: invalid type: null, expected a string"),
    ("role missing", [{"content": "hi"}], "messages[0]: missing field `role`"),
    ("name a map", [{"role": "user", "name": {}, "content": "hi"}],
     "messages[0].name: invalid type: a map, expected a string"),
    ("message a string", ["hi"], "messages[0]: invalid type: string 'hi', expected a map"),
]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/invocations"])
@pytest.mark.parametrize("name, messages, problem", BAD_MESSAGES, ids=[m[0] for m in BAD_MESSAGES])
def test_malformed_chat_message_is_a_422_naming_the_field(server, path, name, messages, problem):
    response = post(server.url, {"messages": messages, "max_tokens": 2}, path=path)
    assert_json_error(response, 422, chat_error(problem))


def test_text_and_image_parts_are_served(server):
    content = [{"type": "text", "text": "Make "}, {"type": "image_url", "image_url": {"url": "x"}},
               {"type": "text", "text": "cheese"}]
    with_parts = post(server.url, {"messages": [{"role": "user", "content": content}], "max_tokens": 2},
                      path="/v1/chat/completions").json()
    as_text = post(server.url, {"messages": [{"role": "user", "content": "Make cheese"}], "max_tokens": 2},
                   path="/v1/chat/completions").json()
    assert with_parts["usage"] == as_text["usage"]


# The most extreme values validation accepts (float32's range): the logits they produce must still
# reach the client as strict JSON. (Beyond that range, e.g. `repetition_penalty: 1e300`, which once
# produced `"logprob":NaN`, is a 422: tests/test_hostile_parameters.py.)
EXTREME_CHATS = [
    {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4, "logprobs": True,
     "top_logprobs": 5, "repetition_penalty": 1e37},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "logprobs": True,
     "top_logprobs": 3, "temperature": 1e-37, "seed": 1},
]


@pytest.mark.parametrize("body", EXTREME_CHATS, ids=["penalty 1e37", "temperature 1e-37"])
def test_extreme_parameters_give_strict_json_logprobs(server, body):
    response = post(server.url, body, path="/v1/chat/completions")
    assert response.status_code == 200
    content = strict_json(response.text)["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    assert all(e["logprob"] is None or isinstance(e["logprob"], float) for e in content)


@pytest.mark.parametrize("body", EXTREME_CHATS, ids=["penalty 1e37", "temperature 1e-37"])
def test_extreme_parameters_give_strict_json_stream_events(server, body):
    response, raw = stream_raw(server.url, dict(body, stream=True), path="/v1/chat/completions")
    assert response.status_code == 200 and raw.endswith(b"data: [DONE]\n\n")
    chunks = [strict_json(block[len(b"data: "):].decode()) for block in raw.split(b"\n\n")[:-2]]
    assert len(chunks) == 4 and all(c["choices"][0]["logprobs"]["content"] for c in chunks)


def test_dump_json_writes_non_finite_floats_as_null():
    payload = {"a": [float("nan"), float("-inf"), 1.5], "b": ({"c": float("inf")},), "d": "é"}
    assert dump_json(payload) == '{"a":[null,null,1.5],"b":[{"c":null}],"d":"é"}'
    assert dump_json({"logprob": -0.25, "text": "x"}) == '{"logprob":-0.25,"text":"x"}'


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1//chat/completions"), ("POST", "/v1//completions"), ("POST", "/v1/completions/"),
    ("GET", "/ping//"), ("POST", "/generate//"), ("POST", "/invocations//"),
])
def test_paths_with_extra_slashes_are_a_json_404(server, method, path):
    response = requests.request(method, server.url + path, json={"inputs": "x"}, timeout=30, allow_redirects=False)
    assert_json_error(response, 404, {"error": f"Route {method} {path} not found", "error_type": "not_found"})


@pytest.mark.parametrize("target", ["//ping", "//invocations", "//generate"])
def test_a_target_starting_with_two_slashes_is_a_json_404(server, target):
    """gunicorn reads `//x` as host `x` and path `/`: it must not be answered as `/`."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", target, body=b'{"inputs": "x"}', headers=JSON)
    response = connection.getresponse()
    assert response.status == 404 and response.getheader("Content-Type") == "application/json"
    assert strict_json(response.read().decode()) == {"error": f"Route POST {target} not found",
                                                     "error_type": "not_found"}


def test_health_is_empty_and_not_html(server):
    response = requests.get(server.url + "/ping", timeout=2)
    assert response.status_code == 200 and response.content == b""
    assert "html" not in response.headers["Content-Type"]


def in_process_app(error: BaseException | None = None):
    """The real app over a host that never loaded (no model needed): what /ping and friends say then."""
    return create_app(SimpleNamespace(service=None, error=error), Config(model_id="m"))


def test_a_routing_redirect_leaves_as_json():
    app = in_process_app()
    app.add_url_rule("/slashed/", "slashed", lambda: "unreachable")  # werkzeug redirects /slashed here
    response = app.test_client().get("/slashed")
    assert response.status_code == 404 and response.is_json
    assert response.get_json() == {"error": "Route GET /slashed not found", "error_type": "not_found"}


def test_a_failed_load_answers_a_stable_503_without_internals():
    app = in_process_app(OSError("/secret/models/llama/config.json: permission denied"))
    for path, method in (("/ping", "get"), ("/invocations", "post")):
        response = getattr(app.test_client(), method)(path, json={"inputs": "x"})
        assert response.status_code == 503
        assert response.get_json() == {"error": "Model failed to load; see the server log", "error_type": "healthcheck"}


def test_tokenizer_failure_is_a_stable_422_and_the_detail_is_logged(caplog):
    def tokenizer(text, add_special_tokens):
        raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")

    validator = Validator(tokenizer, TokenLimits(max_input_tokens=8, max_total_tokens=16), 4)
    with caplog.at_level(logging.ERROR, logger="sluice.validation"), pytest.raises(ValidationError) as raised:
        validator.tokenize("x")
    assert raised.value.body() == {"error": "Input validation error: tokenizer error: the input could not be tokenized",
                                   "error_type": "validation"}
    assert "TextEncodeInput" in caplog.text


UNAUTHORIZED = {"error": "Unauthorized: a valid `Authorization: Bearer <API_KEY>` header is required",
                "error_type": "unauthorized"}


def test_api_key_is_compared_byte_for_byte(start_server):
    guarded = start_server(env={"API_KEY": "S3crét"})
    body = b'{"inputs":"x","parameters":{"max_new_tokens":1}}'

    def status_with(authorization: bytes) -> requests.Response:
        return post_raw(guarded.url, "/generate", body, headers={"Authorization": authorization})

    assert status_with("Bearer S3crét".encode()).status_code == 200  # the key's UTF-8 bytes
    assert status_with("bearer S3crét".encode()).status_code == 200  # the scheme word is case-insensitive
    for wrong in ("Bearer s3crét".encode(), "Bearer S3CRÉT".encode(), "Bearer S3crét".encode("latin-1"),
                  b"Bearer \xe9\xe9", b"Bearer \xc3\xa9\xc3\xa9", b"Bearer S3cr", "Basic S3crét".encode()):
        assert_json_error(status_with(wrong), 401, UNAUTHORIZED)


def test_server_still_serves_after_the_battery(server):
    for _, path, raw in DEEP_BODIES + LONE_SURROGATES:
        post_raw(server.url, path, raw)
    for _, messages, _ in BAD_MESSAGES:
        post(server.url, {"messages": messages}, path="/v1/chat/completions")
    for body in EXTREME_CHATS:
        post(server.url, body, path="/v1/chat/completions")
    assert generate(server.url, "Still alive?", max_new_tokens=3)[0]["generated_text"]
    events = sse_events(stream_raw(server.url, {"inputs": "x", "parameters": {"max_new_tokens": 2}},
                                   path="/generate_stream")[1])
    assert len(events) == 2
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
