"""Fast tier: each dialect's body -> the typed request, without HTTP (no model, no server).

What a client's body turns into decides everything downstream, so the mapping is pinned here:
TGI's compat defaults, OpenAI's names and their TGI meanings, grammars from response_format and
tools, and the template's BOS never added twice.
"""

from __future__ import annotations

import pytest

from fake_engine import CharTokenizer
from sluice.errors import BatchSizeError, SuffixNotSupportedError, ToolError, ValidationError
from sluice.protocols.openai.chat import ChatDialect
from sluice.protocols.openai.completions import CompletionsDialect
from sluice.protocols.tgi.dialect import TgiDialect
from sluice.request import ANY_OBJECT, RequestLimits
from sluice.serving.exchange import ParseContext

CONTEXT = ParseContext(RequestLimits(), CharTokenizer(), "served-model", "cpu")
MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def chat(**body):
    return ChatDialect("fp").parse(dict(body, messages=MESSAGES), CONTEXT)


def test_compat_bodies_return_the_full_text_by_default_and_generate_bodies_do_not():
    body = {"inputs": "hi", "stream": True}
    compat = TgiDialect(stream=None, compat=True).parse(body, CONTEXT)
    generate = TgiDialect(stream=False, compat=False).parse(body, CONTEXT)
    assert (compat.request.return_full_text, compat.stream) == (True, True)
    assert (generate.request.return_full_text, generate.stream) == (False, False)


def test_openai_temperature_zero_is_greedy_and_any_other_value_samples():
    assert chat(temperature=0).request.sampling.do_sample is False
    sampled = chat(temperature=0.7).request.sampling
    assert (sampled.do_sample, sampled.temperature) == (True, 0.7)
    assert chat().request.sampling.do_sample is False


def test_openai_names_map_to_generation_parameters():
    request = chat(max_tokens=7, stop="END", seed=3, logprobs=True, top_logprobs=2, top_p=0.5).request
    assert (request.max_new_tokens, request.stop, request.sampling.seed) == (7, ("END",), 3)
    assert (request.top_n_tokens, request.sampling.top_p, request.details) == (2, 0.5, True)
    assert chat(max_completion_tokens=5, max_tokens=5).request.max_new_tokens == 5
    assert chat(max_completion_tokens=5).request.max_new_tokens == 5
    assert chat(top_logprobs=0).request.top_n_tokens == 0  # counts only with logprobs


def test_presence_penalty_is_tgis_repetition_penalty_plus_two_never_dropped():
    assert chat(presence_penalty=0.5).request.sampling.repetition_penalty == 2.5
    assert chat(presence_penalty=0.5, repetition_penalty=1.1).request.sampling.repetition_penalty == 1.1
    assert chat().request.sampling.repetition_penalty == 1.0
    completion = CompletionsDialect("fp").parse({"prompt": "hi", "presence_penalty": -1.0}, CONTEXT)
    assert completion.requests[0].sampling.repetition_penalty == 1.0  # the same mapping on completions


def test_the_rendered_chat_template_is_not_given_bos_again():
    exchange = chat()
    assert exchange.request.inputs == "hi\n"
    assert [p.add_special_tokens for p in exchange.prompts] == [False]


def test_response_format_and_tools_become_the_requests_grammar():
    assert chat(response_format={"type": "json_object"}).request.grammar == ANY_OBJECT
    assert chat(tools=TOOLS, tool_choice="required").request.grammar is not None
    assert chat(tools=TOOLS, tool_choice="none").request.grammar is None
    with pytest.raises(ToolError):
        chat(tools=TOOLS, response_format={"type": "json_object"})


def test_completions_take_up_to_the_client_batch_size_and_refuse_suffix():
    dialect = CompletionsDialect("fp")
    exchange = dialect.parse({"prompt": ["a", "b"], "max_tokens": 3}, CONTEXT)
    assert [p.request.inputs for p in exchange.prompts] == ["a", "b"]
    assert {p.request.max_new_tokens for p in exchange.prompts} == {3}
    with pytest.raises(BatchSizeError):
        dialect.parse({"prompt": ["a"] * 5}, CONTEXT)
    with pytest.raises(SuffixNotSupportedError):
        dialect.parse({"prompt": "a", "suffix": "b"}, CONTEXT)
    with pytest.raises(ValidationError, match="single prompt"):
        dialect.parse({"prompt": ["a", "b"], "stream": True}, CONTEXT)


def test_the_answer_names_the_model_the_client_named_unless_it_said_tgi():
    assert chat(model="tgi").envelope.fields["model"] == "served-model"
    assert chat(model="my-model").envelope.fields["model"] == "my-model"


def test_an_empty_stop_string_stops_nothing_and_does_not_count_toward_the_limit():
    """Five stops, one of them empty, fit the limit of four: the empty one is left out, as
    docs/http-api.md says (matched, it would end every answer after its first token)."""
    body = {"inputs": "hi", "parameters": {"stop": ["a", "", "b", "c", "d"]}}
    request = TgiDialect(stream=False, compat=False).parse(body, CONTEXT).request
    assert request.stop == ("a", "b", "c", "d")
    assert chat(stop=["", "x"]).prompts[0].request.stop == ("x",)
