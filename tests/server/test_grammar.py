"""Structured output through the real server: TGI `grammar`, OpenAI `response_format` and tool
calls. The model is untrained, so every valid answer here is the grammar's doing, not the model's."""

from __future__ import annotations

import concurrent.futures as futures
import json
import re

import jsonschema
import pytest
import requests

from grammar_cases import (
    BAD_GRAMMARS,
    PARAMETERS,
    REGEX,
    SAMPLED,
    SCHEMA,
    TOOLS,
    assert_stream_reassembles_to,
    assert_text_or_valid_call,
    assert_valid_call,
    chat,
    chat_stream_chunks,
    constrained,
    in_parallel,
    reassemble,
)
from http_client import metric, post, sse_events, stream_raw, wait_for

# --- TGI grammar ------------------------------------------------------------------------------

def test_fifty_sampled_json_schema_answers_all_parse_and_validate(server):
    answers = in_parallel(lambda seed: constrained(server.url, {"type": "json", "value": SCHEMA}, seed=seed),
                          range(50))
    for answer in answers:
        jsonschema.validate(json.loads(answer["generated_text"]), SCHEMA)
        assert answer["details"]["finish_reason"] == "eos_token"


def test_fifty_sampled_regex_answers_all_match(server):
    answers = in_parallel(lambda seed: constrained(server.url, {"type": "regex", "value": REGEX}, seed=seed),
                          range(50))
    for answer in answers:
        assert re.fullmatch(REGEX, answer["generated_text"]), answer["generated_text"]


def test_json_schema_variant_and_greedy_and_compat_route_are_constrained(server):
    config = {"type": "json_schema", "value": {"name": "trip", "schema": SCHEMA, "strict": True}}
    greedy = constrained(server.url, config, do_sample=False)
    jsonschema.validate(json.loads(greedy["generated_text"]), SCHEMA)
    compat = constrained(server.url, {"type": "json", "value": json.dumps(SCHEMA)}, path="/invocations", seed=3,
                         return_full_text=False)
    jsonschema.validate(json.loads(compat[0]["generated_text"]), SCHEMA)


def test_constrained_rows_batch_with_unconstrained_streams_that_still_run_to_max_new_tokens(server):
    def free(index):
        response, raw = stream_raw(server.url, {"inputs": f"Story {index}:", "stream": True,
                                                "parameters": {"max_new_tokens": 48, "do_sample": True, "seed": index,
                                                               "details": True}})
        return sse_events(raw)[-1]["details"]

    with futures.ThreadPoolExecutor(16) as pool:
        streams = [pool.submit(free, i) for i in range(8)]
        wait_for(lambda: metric(server.url, "tgi_batch_current_size") >= 1 or all(s.done() for s in streams),
                 "the free streams are generating")
        answers = [pool.submit(constrained, server.url, {"type": "json", "value": SCHEMA}, seed=s) for s in range(8)]
        for answer in answers:
            jsonschema.validate(json.loads(answer.result()["generated_text"]), SCHEMA)
        for details in (s.result() for s in streams):
            assert details["finish_reason"] == "length" and details["generated_tokens"] == 48


def test_streamed_constrained_answer_equals_the_non_streamed_one(server):
    grammar = {"type": "json", "value": SCHEMA}
    whole = constrained(server.url, grammar, seed=11)
    response, raw = stream_raw(server.url, {"inputs": "Tell me about cheese.", "stream": True,
                                            "parameters": dict(SAMPLED, seed=11, grammar=grammar, details=True)},
                               path="/generate_stream")
    events = sse_events(raw)
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == whole["generated_text"]
    assert events[-1]["generated_text"] == whole["generated_text"]
    assert events[-1]["details"]["finish_reason"] == "eos_token"


def test_max_new_tokens_cuts_a_constrained_answer_to_a_valid_prefix_with_finish_reason_length(server):
    digits = constrained(server.url, {"type": "regex", "value": "[0-9]{40}"}, max_new_tokens=6, seed=1)
    assert digits["details"]["finish_reason"] == "length"
    assert re.fullmatch(r"[0-9]{1,39}", digits["generated_text"])
    cut = constrained(server.url, {"type": "json", "value": SCHEMA}, max_new_tokens=6, seed=1)
    assert cut["details"]["finish_reason"] == "length"
    assert '{"city":"'.startswith(cut["generated_text"]) or cut["generated_text"].startswith('{"city":"')


@pytest.mark.parametrize("grammar, text", BAD_GRAMMARS, ids=[str(i) for i in range(len(BAD_GRAMMARS))])
def test_bad_grammar_is_a_422_with_tgis_text(server, grammar, text):
    response = post(server.url, {"inputs": "x", "parameters": {"grammar": grammar}}, path="/generate")
    assert response.status_code == 422
    assert response.json() == {"error": text, "error_type": "validation"}


def nested(depth):
    schema = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


def ref_chain(length):
    """Nesting without JSON depth: each definition holds the next (a long chain overflows
    llguidance's recursion; the body parser's depth limit never sees it)."""
    definitions = {f"d{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"}}, "required": ["a"]}
                   for i in range(length)}
    definitions[f"d{length}"] = {"type": "string"}
    return {"$defs": definitions, "type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}}


HOSTILE = [ref_chain(3000),
           {"type": "object", "properties": {"e": {"enum": [f"value-{i}-xyz" for i in range(100_000)]}}}]


def test_hostile_schemas_get_a_422_within_the_limit_while_another_stream_keeps_flowing(server):
    with futures.ThreadPoolExecutor(1) as pool:
        flowing = pool.submit(stream_raw, server.url, {"inputs": "Hi", "stream": True,
                                                       "parameters": {"max_new_tokens": 150, "details": True}})
        for schema in HOSTILE:
            response = post(server.url, {"inputs": "x", "parameters": {"grammar": {"type": "json", "value": schema}}},
                            path="/generate")
            assert response.status_code == 422 and response.json()["error"].startswith(
                "Input validation error: grammar is not valid: "), response.text
        deepest = post(server.url, {"inputs": "x", "parameters": {"max_new_tokens": 2, "grammar": {
            "type": "json", "value": nested(61)}}}, path="/generate")  # the deepest body JSON allows
        assert deepest.status_code == 200 and deepest.json()["generated_text"].startswith('{"')
        details = sse_events(flowing.result()[1])[-1]["details"]
    assert details["generated_tokens"] == 150


def test_a_grammar_too_complex_for_the_compile_limits_is_a_422(start_server):
    roomy = start_server(env={"GRAMMAR_MAX_BYTES": "10000000", "GRAMMAR_COMPILE_TIMEOUT": "1"})
    response = post(roomy.url, {"inputs": "x", "parameters": {"grammar": {"type": "json", "value": HOSTILE[-1]}}},
                    path="/generate")
    assert response.status_code == 422
    assert response.json()["error"].startswith("Input validation error: grammar is not valid: ")


def test_info_advertises_grammar_support(server):
    info = requests.get(server.url + "/info", timeout=10).json()
    assert info["grammar_support"] is True and "json_schema" in info["grammar_types"]


# --- OpenAI response_format -----------------------------------------------------------------


@pytest.mark.parametrize("response_format", [
    {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA, "strict": True}},
    {"type": "json", "value": SCHEMA},
])
def test_response_format_constrains_chat_and_completions(server, response_format):
    for seed in range(5):
        message = chat(server.url, seed=seed, response_format=response_format)["message"]
        jsonschema.validate(json.loads(message["content"]), SCHEMA)
        response = post(server.url, {"prompt": "Trip:", "max_tokens": 64, "temperature": 1.0, "seed": seed,
                                     "response_format": response_format}, path="/v1/completions")
        jsonschema.validate(json.loads(response.json()["choices"][0]["text"]), SCHEMA)


def test_json_object_response_format_gives_a_json_object_or_a_cut_prefix(server):
    for seed in range(5):
        choice = chat(server.url, seed=seed, max_tokens=32, response_format={"type": "json_object"})
        text = choice["message"]["content"]
        assert text.startswith("{")
        if choice["finish_reason"] == "stop":
            assert isinstance(json.loads(text), dict)


# --- tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool_choice, names", [
    ({"type": "function", "function": {"name": "get_weather"}}, {"get_weather"}),
    ("required", {"get_weather", "get_time"}),
])
def test_named_and_required_tool_choice_always_give_schema_valid_calls(server, tool_choice, names):
    choices = in_parallel(lambda seed: chat(server.url, seed=seed, tools=TOOLS, tool_choice=tool_choice), range(20))
    for choice in choices:
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        [call] = choice["message"]["tool_calls"]
        assert call["id"] == "0"
        assert_valid_call(call, names)


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_streamed_tool_call_deltas_reassemble_to_the_non_streamed_answer(server, tool_choice):
    for seed in range(4):
        whole = chat(server.url, seed=seed, tools=TOOLS, tool_choice=tool_choice)["message"]["tool_calls"][0]
        assert_stream_reassembles_to(server.url, whole, seed, tool_choice)


def test_auto_tool_choice_answers_in_text_or_with_a_valid_call_and_none_means_no_tools(server):
    for seed in range(8):
        choice = chat(server.url, seed=seed, tools=TOOLS, max_tokens=48)
        assert_text_or_valid_call(choice)
        streamed = reassemble(chat_stream_chunks(server.url, seed=seed, tools=TOOLS, max_tokens=48))
        if choice["message"].get("tool_calls"):
            assert streamed[0]["arguments"] == choice["message"]["tool_calls"][0]["function"]["arguments"]
        else:
            assert streamed[1] == choice["message"]["content"]
    plain = chat(server.url, seed=1, tools=TOOLS, tool_choice="none", max_tokens=8)
    assert "tool_calls" not in plain["message"] and plain["finish_reason"] == "length"


def test_a_required_call_cut_by_max_tokens_after_its_name_is_a_call_streamed_or_not(server):
    """Every cut of a forced call: once the name is written the answer is `tool_calls` (arguments
    so far, "" before their key), never the grammar's raw JSON in `content`; the stream agrees."""
    name_only = 0
    for max_tokens in range(1, 24):
        body = dict(seed=0, tools=TOOLS, tool_choice="required", max_tokens=max_tokens, temperature=0)
        choice = chat(server.url, **body)
        call, content = reassemble(chat_stream_chunks(server.url, **body))
        if choice["message"]["content"] is not None:  # cut inside the name: the text as written
            assert not re.match(r'\{"name":"[a-z_]+"', choice["message"]["content"])
            assert content == choice["message"]["content"] and call["name"] is None
            continue
        [whole] = choice["message"]["tool_calls"]
        assert choice["finish_reason"] == "length" and whole["function"]["name"] in PARAMETERS
        assert (content, call) == ("", {"name": whole["function"]["name"], "arguments": whole["function"]["arguments"]})
        name_only += whole["function"]["arguments"] == ""
    assert name_only >= 1  # some cut fell between the name and the arguments' key


def test_a_tool_round_trip_renders_the_call_as_tgi_for_a_template_without_tool_calls(server):
    """The next turn of an agent loop: the model's call (content null), the tool's answer. The
    demo model's template reads only `content`; it was a 422 template_error ('dict object' has no
    attribute 'content'). The call is now written as its JSON text, as TGI writes it."""
    call = chat(server.url, seed=0, tools=TOOLS, tool_choice="required")["message"]
    turn = [{"role": "user", "content": "What is the weather?"}, call,
            {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "sunny, 21 C"}]
    as_text = dict(call, content=json.dumps(call["tool_calls"], separators=(",", ":")))
    body = {"max_tokens": 4, "temperature": 0}
    answered = post(server.url, dict(body, messages=turn), path="/v1/chat/completions")
    assert answered.status_code == 200, answered.text
    written = post(server.url, dict(body, messages=[turn[0], as_text, turn[2]]), path="/v1/chat/completions").json()
    assert answered.json()["choices"] == written["choices"] and answered.json()["usage"] == written["usage"]
    bad = post(server.url, dict(body, messages=[dict(call, tool_calls="get_weather")]), path="/v1/chat/completions")
    assert bad.status_code == 422 and bad.json()["error"].endswith(
        "messages[0].tool_calls: invalid type: string 'get_weather', expected a sequence")


def test_tool_errors_have_tgis_texts(server):
    body = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    both = post(server.url, dict(body, response_format={"type": "json_object"}), path="/v1/chat/completions")
    assert both.status_code == 422
    assert both.json() == {"error": "Tool error: Grammar and tools are mutually exclusive", "error_type": "tool_error"}
    unknown = post(server.url, dict(body, tool_choice={"type": "function", "function": {"name": "nope"}}),
                   path="/v1/chat/completions")
    assert unknown.status_code == 422
    assert unknown.json() == {"error": "Tool error: Tool with name nope not found", "error_type": "tool_error"}


# --- the real clients -------------------------------------------------------------------------

def test_text_generation_client_generate_with_a_grammar(server):
    import text_generation
    from text_generation.types import Grammar, GrammarType

    client = text_generation.Client(server.url, timeout=60)
    answer = client.generate("Hi", max_new_tokens=64, do_sample=True, seed=5,
                             grammar=Grammar(type=GrammarType.Json, value=SCHEMA))
    jsonschema.validate(json.loads(answer.generated_text), SCHEMA)
    regex = client.generate("Hi", max_new_tokens=16, grammar=Grammar(type=GrammarType.Regex, value=REGEX))
    assert re.fullmatch(REGEX, regex.generated_text)


def test_huggingface_hub_client_text_generation_and_chat_completion(server):
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=server.url)
    text = client.text_generation("Hi", max_new_tokens=64, seed=2, temperature=1.0, return_full_text=False,
                                  grammar={"type": "json", "value": SCHEMA})
    jsonschema.validate(json.loads(text), SCHEMA)
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    formatted = client.chat_completion(messages, max_tokens=64, seed=2, temperature=1.0, response_format={
        "type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}})
    jsonschema.validate(json.loads(formatted.choices[0].message.content), SCHEMA)
    called = client.chat_completion(messages, max_tokens=64, seed=2, tools=TOOLS, tool_choice="required")
    call = called.choices[0].message.tool_calls[0]
    assert called.choices[0].finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])
    streamed = "".join(chunk.choices[0].delta.tool_calls[0].function.arguments
                       for chunk in client.chat_completion(messages, max_tokens=64, seed=2, tools=TOOLS,
                                                           tool_choice="required", stream=True)
                       if chunk.choices and chunk.choices[0].delta.tool_calls)
    assert streamed == call.function.arguments
