"""Issue 11 item 4 on the vLLM engine, beyond tests/vllm/test_vllm_engine.py: OpenAI `response_format`,
`required` and `auto` tool choice (a Lark grammar through vLLM's guidance backend) and streamed
tool-call deltas that reassemble to the non-streamed call. Same shared vLLM server (skips without
.venv-vllm)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from grammar_cases import (
    PARAMETERS,
    SCHEMA,
    TOOLS,
    assert_stream_reassembles_to,
    assert_text_or_valid_call,
    assert_valid_call,
    chat,
)

pytestmark = pytest.mark.vllm


def test_response_format_json_schema_constrains_chat_on_vllm(vllm_server):
    response_format = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True}}
    for seed in range(4):
        choice = chat(vllm_server.url, seed=seed, response_format=response_format)
        jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)
        assert choice["finish_reason"] == "stop"


def test_required_tool_choice_on_vllm_streams_deltas_that_reassemble_to_the_call(vllm_server):
    for seed in range(3):
        whole = chat(vllm_server.url, seed=seed, tools=TOOLS, tool_choice="required")
        assert whole["finish_reason"] == "tool_calls"
        [call] = whole["message"]["tool_calls"]
        assert_valid_call(call, set(PARAMETERS))
        assert_stream_reassembles_to(vllm_server.url, call, seed, "required")


def test_auto_tool_choice_on_vllm_is_text_or_a_valid_call(vllm_server):
    for seed in range(4):
        assert_text_or_valid_call(chat(vllm_server.url, seed=seed, tools=TOOLS, max_tokens=48))
