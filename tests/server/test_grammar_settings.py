"""The documented grammar settings (docs/configuration.md) through the real server: DISABLE_GRAMMAR_SUPPORT and
GRAMMAR_MAX_BYTES answer TGI-style 422s, never a silently unconstrained answer (issue 11's
"never dropped")."""

from __future__ import annotations

import json

import jsonschema
import requests

from grammar_cases import SCHEMA, TOOLS, constrained
from http_client import post, sse_events, stream_raw

NOT_SUPPORTED = {"error": "Input validation error: grammar is not supported", "error_type": "validation"}
CHAT = {"messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 8}


def test_disabled_grammar_support_refuses_every_constraint_and_says_so_in_info(start_server):
    server = start_server(env={"DISABLE_GRAMMAR_SUPPORT": "true"})
    assert requests.get(server.url + "/info", timeout=10).json()["grammar_support"] is False
    grammar = {"type": "json", "value": SCHEMA}
    for path in ("/generate", "/invocations"):
        response = post(server.url, {"inputs": "x", "parameters": {"grammar": grammar}}, path=path)
        assert (response.status_code, response.json()) == (422, NOT_SUPPORTED)
    _, raw = stream_raw(server.url, {"inputs": "x", "parameters": {"grammar": grammar}}, path="/generate_stream")
    assert sse_events(raw) == [NOT_SUPPORTED]  # in band, as TGI's generate_stream
    for extra in ({"response_format": {"type": "json_object"}},
                  {"tools": TOOLS, "tool_choice": "required"},
                  {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
                  {"tools": TOOLS}):  # auto: text or a call, which is a grammar too
        response = post(server.url, dict(CHAT, **extra), path="/v1/chat/completions")
        assert (response.status_code, response.json()) == (422, NOT_SUPPORTED), extra
    # without a constraint the server still serves, and tool_choice "none" needs no grammar
    plain = post(server.url, dict(CHAT, tools=TOOLS, tool_choice="none"), path="/v1/chat/completions")
    assert plain.status_code == 200 and plain.json()["choices"][0]["finish_reason"] == "length"


def test_a_grammar_over_grammar_max_bytes_is_a_422_naming_the_limit(start_server):
    server = start_server(env={"GRAMMAR_MAX_BYTES": "100"})
    small = post(server.url, {"inputs": "x", "parameters": {"max_new_tokens": 16,
                                                           "grammar": {"type": "regex", "value": "[0-9]{3}"}}},
                 path="/generate")
    assert small.status_code == 200 and len(small.json()["generated_text"]) == 3
    big = post(server.url, {"inputs": "x", "parameters": {"grammar": {"type": "json", "value": SCHEMA}}},
               path="/generate")
    assert big.status_code == 422
    error = big.json()["error"]
    assert error.startswith("Input validation error: grammar is not valid: the grammar is too large (")
    assert error.endswith(" bytes; the limit is 100)")


def test_the_readmes_other_grammar_shapes_are_constrained_too(server):
    """`json_object` with a schema, and `json_schema` given the bare schema (docs: "or the schema itself")."""
    for grammar in ({"type": "json_object", "value": SCHEMA}, {"type": "json_schema", "value": SCHEMA}):
        for seed in range(3):
            answer = constrained(server.url, grammar, seed=seed)
            jsonschema.validate(json.loads(answer["generated_text"]), SCHEMA)
            assert answer["details"]["finish_reason"] == "eos_token"
