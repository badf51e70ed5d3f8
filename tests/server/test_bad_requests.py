"""Bad requests through the real server: always an exact JSON 4xx, never HTML, a 500 or invalid
JSON, and the server keeps serving.

Parse-level problems (malformed JSON, invalid UTF-8, nesting past serde_json's limit, lone
surrogates, NaN/Infinity literals) are TGI's 400 `bad_request`, the same on every route and in
every field, because TGI's parser refuses them before any route sees the body. Well-formed bodies
of the wrong shape are 422 `validation`, naming the field as the client wrote it.
"""

from __future__ import annotations

import gzip
import http.client

import pytest
import requests

from http_client import generate, post, sse_events, stream_raw, strict_json

JSON = {"Content-Type": "application/json"}
TOO_DEEP = {"error": "Failed to parse the request body as JSON: recursion limit exceeded", "error_type": "bad_request"}
LONE_SURROGATE = {"error": "Failed to parse the request body as JSON: lone surrogate in hex escape",
                  "error_type": "bad_request"}
DESERIALIZE = "Failed to deserialize the JSON body into the target type: "
VALIDATION = "Input validation error: "
CHAT = {"messages": [{"role": "user", "content": "How do I make cheese?"}], "max_tokens": 2}
COMPLETION = {"prompt": "How do I make cheese?", "max_tokens": 2}

BAD = [
    ("malformed json", dict(data=b'{"inputs": "x",', headers={"Content-Type": "application/json"}), 400, "bad_request"),
    ("invalid utf-8", dict(data=b'{"inputs": "\xff\xfe"}', headers=JSON), 400, "bad_request"),
    ("wrong content type", dict(data=b'{"inputs": "x"}', headers={"Content-Type": "text/plain"}), 415,
     "unsupported_media_type"),
    ("no content type", dict(data=b'{"inputs": "x"}'), 415, "unsupported_media_type"),
    ("inputs not a string", dict(json={"inputs": ["a", "b"]}), 422, "validation"),
    ("missing inputs", dict(json={"parameters": {}}), 422, "validation"),
    ("body is a list", dict(json=[1, 2]), 422, "validation"),
    ("parameters not an object", dict(json={"inputs": "x", "parameters": "fast"}), 422, "validation"),
    ("temperature as string", dict(json={"inputs": "x", "parameters": {"temperature": "hot"}}), 422, "validation"),
    ("max_new_tokens negative", dict(json={"inputs": "x", "parameters": {"max_new_tokens": -3}}), 422, "validation"),
    ("max_new_tokens fractional", dict(json={"inputs": "x", "parameters": {"max_new_tokens": 2.5}}), 422, "validation"),
    ("seed negative", dict(json={"inputs": "x", "parameters": {"seed": -1}}), 422, "validation"),
    ("stop not a list", dict(json={"inputs": "x", "parameters": {"stop": "###"}}), 422, "validation"),
    ("do_sample as int", dict(json={"inputs": "x", "parameters": {"do_sample": 1}}), 422, "validation"),
    ("stream as string", dict(json={"inputs": "x", "stream": "yes"}), 422, "validation"),
    ("empty inputs", dict(json={"inputs": ""}), 422, "validation"),
    ("too many tokens", dict(json={"inputs": "word " * 3000, "parameters": {"max_new_tokens": 5}}), 422, "validation"),
]


@pytest.mark.parametrize("name, kwargs, status, error_type", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_a_json_error(server, name, kwargs, status, error_type):
    response = requests.post(server.url + "/invocations", timeout=30, **kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type
    assert "Traceback" not in body["error"]


def test_empty_inputs_message_is_tgis(server):
    response = requests.post(server.url + "/invocations", json={"inputs": ""}, timeout=30)
    assert response.json()["error"] == "Input validation error: `inputs` cannot be empty"


def test_body_over_six_mib_is_413(server):
    body = b'{"inputs": "' + b"a" * (6 * 1024 * 1024 + 10) + b'"}'
    response = requests.post(server.url + "/invocations", data=body, timeout=60,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("POST", "/v2/generate", 404), ("GET", "/invocations", 405), ("PUT", "/ping", 405),
    ("DELETE", "/invocations", 405),
])
def test_unknown_route_or_method_is_json(server, method, path, status):
    response = requests.request(method, server.url + path, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"error", "error_type"}


def test_over_long_input_messages_are_tgis(start_server):
    small = start_server(env={"MAX_INPUT_TOKENS": "16", "MAX_TOTAL_TOKENS": "32"})
    response = requests.post(small.url + "/invocations", timeout=30,
                             json={"inputs": "one two three four five six seven eight " * 3,
                                   "parameters": {"max_new_tokens": 4}})
    assert response.status_code == 422
    assert response.json()["error"].startswith(
        "Input validation error: `inputs` must have less than 16 tokens. Given: ")
    response = requests.post(small.url + "/invocations", timeout=30,
                             json={"inputs": "one two", "parameters": {"max_new_tokens": 40}})
    assert response.json()["error"].startswith(
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 32. Given: ")
    assert response.json()["error"].endswith(" `inputs` tokens and 40 `max_new_tokens`")


MISNAMED_FIELDS = [  # each once named the wrong problem ("a sequence" for a bad item, "missing" for a number)
    ("/generate", {"inputs": "x", "parameters": {"stop": ["ok", None]}},
     "parameters.stop[1]: invalid type: null, expected a string"),
    ("/v1/chat/completions", dict(CHAT, stop=["ok", 5]), "stop[1]: invalid type: number `5`, expected a string"),
    ("/tokenize", {"inputs": 5}, "inputs: invalid type: number `5`, expected a string"),
    ("/tokenize", ["x"], "invalid type: a sequence, expected a map with an `inputs` string"),
]


@pytest.mark.parametrize("path, body, problem", MISNAMED_FIELDS, ids=[f"{m[0]} {m[2][:20]}" for m in MISNAMED_FIELDS])
def test_a_wrong_item_or_type_is_named_as_serde_names_it(server, path, body, problem):
    assert_json_error(post(server.url, body, path=path), 422,
                      {"error": DESERIALIZE + problem, "error_type": "validation"})


REPEATED_KEYS = [
    ("inputs twice", "/generate", b'{"inputs": "Why?", "inputs": "How do I make cheese?"}', "inputs"),
    ("max_new_tokens twice", "/invocations",
     b'{"inputs": "x", "parameters": {"max_new_tokens": 2, "max_new_tokens": 900}}', "max_new_tokens"),
    ("stream twice", "/generate_stream", b'{"inputs": "x", "stream": true, "stream": false}', "stream"),
    ("chat role twice", "/v1/chat/completions",
     b'{"messages": [{"role": "system", "role": "user", "content": "hi"}]}', "role"),
    ("max_tokens twice", "/v1/completions", b'{"prompt": "hi", "max_tokens": 1, "max_tokens": 2}', "max_tokens"),
]


@pytest.mark.parametrize("name, path, raw, key", REPEATED_KEYS, ids=[r[0] for r in REPEATED_KEYS])
def test_a_key_repeated_in_one_object_is_a_422_not_a_silent_last_wins(server, name, path, raw, key):
    assert_json_error(post_raw(server.url, path, raw), 422,
                      {"error": DESERIALIZE + f"duplicate field `{key}`", "error_type": "validation"})


ENCODED_BODY = b'{"inputs": "How do I make cheese?", "parameters": {"max_new_tokens": 2}}'


@pytest.mark.parametrize("path", ["/invocations", "/generate_stream", "/v1/completions"])
@pytest.mark.parametrize("coding, raw", [
    ("gzip", gzip.compress(ENCODED_BODY)),  # compressed: was parsed as JSON text, a misleading UTF-8 400
    ("br", ENCODED_BODY),  # labelled compressed but plain: was served as if the header were not there
    ("identity, gzip", gzip.compress(ENCODED_BODY)),
], ids=["gzip", "br label on plain JSON", "identity then gzip"])
def test_a_compressed_body_is_a_415_naming_the_coding(server, path, coding, raw):
    response = post_raw(server.url, path, raw, headers={"Content-Encoding": coding})
    unsupported = coding.replace("identity, ", "")
    assert_json_error(response, 415, {"error": f"Unsupported Content-Encoding `{unsupported}`: send the body "
                                               "uncompressed", "error_type": "unsupported_media_type"})


def test_identity_content_encoding_is_served(server):
    response = post_raw(server.url, "/generate", ENCODED_BODY, headers={"Content-Encoding": "identity"})
    assert response.status_code == 200 and response.json()["generated_text"]


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
    ("deep chat message", "/v1/chat/completions",
     b'{"messages":[{"role":"user","content":"hi","x":' + nested(40_000) + b"}]}"),
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
    ("chat model on invocations", "/invocations",
     b'{"model":' + SURROGATE + b',"messages":[{"role":"user","content":"hi"}]}'),
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
    ("image part without image_url", [{"role": "user", "content": [{"type": "image_url"}]}],
     "messages[0].content[0]: missing field `image_url`"),
    ("image_url a string", [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]}],
     "messages[0].content[0].image_url: invalid type: string 'https://x/y.png', expected a map"),
    ("image url a number", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}],
     "messages[0].content[0].image_url.url: invalid type: number `5`, expected a string"),
]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/invocations"])
@pytest.mark.parametrize("name, messages, problem", BAD_MESSAGES, ids=[m[0] for m in BAD_MESSAGES])
def test_malformed_chat_message_is_a_422_naming_the_field(server, path, name, messages, problem):
    response = post(server.url, {"messages": messages, "max_tokens": 2}, path=path)
    assert_json_error(response, 422, chat_error(problem))


def test_text_and_image_parts_are_served_with_the_image_as_tgis_markdown(server):
    """The server reads no images; an image part is not dropped from the prompt (the answer would
    ignore it silently) but written as TGI writes it for a text-only model, ``![](<url>)``."""
    content = [{"type": "text", "text": "Make "}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
               {"type": "text", "text": "cheese"}]

    def answer(content) -> dict:
        body = {"messages": [{"role": "user", "content": content}], "max_tokens": 4}
        return post(server.url, body, path="/v1/chat/completions", headers={"x-use-cache": "0"}).json()

    with_parts = answer(content)
    assert with_parts == dict(answer("Make ![](https://x/y.png)cheese"), id=with_parts["id"],
                              created=with_parts["created"])
    assert with_parts["usage"]["prompt_tokens"] > answer("Make cheese")["usage"]["prompt_tokens"]


# Fields the client sent that used to be accepted and then ignored (or, for `model`, read as absent).
UNHONOURED_OPENAI_FIELDS = [
    ("model a number", "/v1/chat/completions", dict(CHAT, model=5),
     DESERIALIZE + "model: invalid type: number `5`, expected a string"),
    ("model a list", "/v1/completions", dict(COMPLETION, model=["tiny"]),
     DESERIALIZE + "model: invalid type: a sequence, expected a string"),
    ("include_usage a string", "/v1/chat/completions",
     dict(CHAT, stream=True, stream_options={"include_usage": "x"}),
     DESERIALIZE + "stream_options.include_usage: invalid type: string 'x', expected a boolean"),
    ("include_usage a number on completions", "/v1/completions", dict(COMPLETION, stream_options={"include_usage": 1}),
     DESERIALIZE + "stream_options.include_usage: invalid type: number `1`, expected a boolean"),
    ("max_tokens and max_completion_tokens disagree", "/v1/chat/completions",
     dict(CHAT, max_tokens=4, max_completion_tokens=3),
     DESERIALIZE + "max_completion_tokens: `3` disagrees with max_tokens: `4`; send one of them"),
    ("top_logprobs without logprobs", "/v1/chat/completions", dict(CHAT, top_logprobs=2),
     VALIDATION + "when using `top_logprobs`, `logprobs` must be set to true"),
    ("completions echo", "/v1/completions", dict(COMPLETION, echo=True),
     VALIDATION + "`echo` is not supported: the answer holds the completion only"),
    ("completions logprobs", "/v1/completions", dict(COMPLETION, logprobs=True),
     VALIDATION + "`logprobs` is not supported on completions; chat completions return them"),
    ("completions best_of", "/v1/completions", dict(COMPLETION, best_of=2),
     VALIDATION + "`best_of` is not supported on completions; `n` gives several choices. Given: 2"),
    ("legacy functions", "/v1/chat/completions",
     dict(CHAT, functions=[{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]),
     VALIDATION + "`functions` is not supported: use `tools`"),
    ("legacy function_call", "/v1/chat/completions", dict(CHAT, function_call="auto"),
     VALIDATION + "`function_call` is not supported: use `tool_choice`"),
    ("audio output", "/v1/chat/completions", dict(CHAT, audio={"voice": "alloy", "format": "wav"}),
     VALIDATION + "`audio` is not supported: this server answers with text only"),
    ("modalities with audio", "/v1/chat/completions", dict(CHAT, modalities=["text", "audio"]),
     VALIDATION + "`modalities` other than [\"text\"] are not supported. Given: ['text', 'audio']"),
    ("presence_penalty below -2", "/v1/chat/completions", dict(CHAT, presence_penalty=-2.5),
     VALIDATION + "`presence_penalty` must be > -2.0 and < 1e37 (it is applied as TGI's `repetition_penalty` "
                  "p + 2.0). Given: -2.5"),
    ("presence_penalty 1e308 on completions", "/v1/completions", dict(COMPLETION, presence_penalty=1e308),
     VALIDATION + "`presence_penalty` must be > -2.0 and < 1e37 (it is applied as TGI's `repetition_penalty` "
                  "p + 2.0). Given: 1e308"),
    ("reasoning_effort", "/v1/chat/completions", dict(CHAT, reasoning_effort="high"),
     VALIDATION + "`reasoning_effort` is not supported: the served model does not reason in a separate phase"),
]


@pytest.mark.parametrize("name, path, body, message", UNHONOURED_OPENAI_FIELDS,
                         ids=[f[0] for f in UNHONOURED_OPENAI_FIELDS])
def test_openai_fields_the_server_would_not_honour_are_a_422(server, name, path, body, message):
    assert_json_error(post(server.url, body, path=path), 422, {"error": message, "error_type": "validation"})


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", dict(CHAT, max_tokens=3, max_completion_tokens=3)),
    ("/v1/chat/completions", dict(CHAT, top_logprobs=0, logprobs=False)),
    ("/v1/chat/completions", dict(CHAT, model=None, stream_options={"include_usage": False})),
    ("/v1/completions", dict(COMPLETION, echo=False, logprobs=False, best_of=1)),
    ("/v1/chat/completions", dict(CHAT, functions=None, reasoning_effort=None, modalities=["text"], user="u",
                                  store=False, metadata={"k": "v"}, service_tier="auto", parallel_tool_calls=False)),
], ids=["equal max_tokens", "top_logprobs 0", "nulls and false", "completions defaults",
        "chat fields that change nothing"])
def test_openai_fields_at_their_defaults_are_served(server, path, body):
    response = post(server.url, body, path=path)
    assert response.status_code == 200, response.text


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
    for _, kwargs, _, _ in BAD:
        requests.post(server.url + "/invocations", timeout=30, **kwargs)
    for _, path, raw in DEEP_BODIES + LONE_SURROGATES:
        post_raw(server.url, path, raw)
    for _, messages, _ in BAD_MESSAGES:
        post(server.url, {"messages": messages}, path="/v1/chat/completions")
    assert generate(server.url, "Still alive?", max_new_tokens=3)[0]["generated_text"]
    events = sse_events(stream_raw(server.url, {"inputs": "x", "parameters": {"max_new_tokens": 2}},
                                   path="/generate_stream")[1])
    assert len(events) == 2
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
