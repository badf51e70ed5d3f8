"""The grammars, tools and requests the structured-output tests share on both engines
(server/test_grammar*, vllm/test_vllm_*): the same cases must hold whichever engine answers."""

from __future__ import annotations

import concurrent.futures as futures
import json

import jsonschema

from http_client import post, stream_raw

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "days", "ok"],
          "properties": {"city": {"enum": ["Paris", "Oslo", "Lima"]},
                         "days": {"type": "integer", "minimum": 1, "maximum": 14},
                         "ok": {"type": "boolean"}}}
REGEX = r"[0-9]{3}-[a-z]{2,5}"
SAMPLED = {"do_sample": True, "temperature": 1.0, "max_new_tokens": 64}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather forecast",
    "parameters": {"type": "object", "required": ["city", "days"],
                   "properties": {"city": {"enum": ["Paris", "Oslo"]},
                                  "days": {"type": "integer", "minimum": 1, "maximum": 7}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "required": ["tz"],
                                       "properties": {"tz": {"enum": ["UTC", "CET"]}}}}}
TOOLS = [WEATHER, TIME]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

# Grammars TGI refuses, with its exact 422 texts.
BAD_GRAMMARS = [
    ({"type": "xml", "value": "a"}, "Failed to deserialize the JSON body into the target type: parameters.grammar: "
     "unknown variant `xml`, expected one of `json`, `json_object`, `regex`, `json_schema`"),
    ({"value": "a"},
     "Failed to deserialize the JSON body into the target type: parameters.grammar: missing field `type`"),
    ({"type": "json", "value": 3}, "Input validation error: grammar is not supported"),
    ({"type": "json", "value": {"type": "object"}},
     "Input validation error: grammar is not valid: Grammar must have a 'properties' field"),
    ({"type": "json", "value": {"properties": {"a": {"type": "foo"}}}},
     "Input validation error: grammar is not valid: Invalid type: foo"),
    ({"type": "json", "value": {"properties": {"a": {"$ref": "#/nope"}}}},
     "Input validation error: grammar is not valid: Pointer '/nope' does not exist"),
    ({"type": "regex", "value": "[a-"}, 'Input validation error: grammar is not valid: at 1(8): invalid regex "[a-" '
     "(in regex): regex parse error: unclosed character class"),
]


def constrained(url, grammar, path="/generate", inputs="Tell me about cheese.", **parameters):
    body = {"inputs": inputs, "parameters": dict(SAMPLED, details=True, grammar=grammar, **parameters)}
    response = post(url, body, path=path)
    assert response.status_code == 200, response.text
    return response.json()


def in_parallel(function, items, workers=16):
    with futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


def chat(url, **body):
    body = dict({"model": "tgi", "messages": [{"role": "user", "content": "What is the weather?"}],
                 "max_tokens": 64, "temperature": 1.0}, **body)
    response = post(url, body, path="/v1/chat/completions")
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]


def chat_stream_chunks(url, **body):
    body = dict({"model": "tgi", "messages": [{"role": "user", "content": "What is the weather?"}],
                 "max_tokens": 64, "temperature": 1.0, "stream": True}, **body)
    response, raw = stream_raw(url, body, path="/v1/chat/completions")
    assert response.status_code == 200
    assert raw.endswith(b"data: [DONE]\n\n")
    return [json.loads(block[6:]) for block in raw.split(b"\n\n") if block.startswith(b"data: {")]


def assert_valid_call(call, names):
    assert call["type"] == "function" and call["function"]["name"] in names
    jsonschema.validate(json.loads(call["function"]["arguments"]), PARAMETERS[call["function"]["name"]])


def assert_text_or_valid_call(choice) -> None:
    """`tool_choice: auto`: a valid call (or one cut by max_tokens), or text that is no JSON call."""
    if choice["message"].get("tool_calls"):
        assert choice["finish_reason"] in ("tool_calls", "length")
        if choice["finish_reason"] == "tool_calls":
            assert_valid_call(choice["message"]["tool_calls"][0], set(PARAMETERS))
    else:
        assert not choice["message"]["content"].startswith("{")


def reassemble(chunks):
    """The tool call (or text) that OpenAI-style deltas add up to, as a client accumulates them."""
    call, content = {"name": None, "arguments": ""}, ""
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        content += delta.get("content") or ""
        for fragment in delta.get("tool_calls") or []:
            call["name"] = call["name"] or fragment["function"]["name"]
            call["arguments"] += fragment["function"]["arguments"]
    return call, content


def assert_stream_reassembles_to(url, whole_call, seed, tool_choice) -> None:
    """The streamed tool-call deltas of the same request add up to the non-streamed call, and the
    stream ends with ``tool_calls``."""
    chunks = chat_stream_chunks(url, seed=seed, tools=TOOLS, tool_choice=tool_choice)
    call, content = reassemble(chunks)
    assert content == ""
    assert call == {"name": whole_call["function"]["name"], "arguments": whole_call["function"]["arguments"]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
