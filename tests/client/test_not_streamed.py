"""A request without ``"stream": true`` read through the streaming API (issue 24 item 4).

The container then answers with its whole body, which arrives as one PayloadPart; `TokenIterator`
used to yield nothing from it. Now it yields the body's text as one piece with a
`NotStreamedWarning` that names the missing flag, and an error body raises its typed error.
"""

from __future__ import annotations

import json
import warnings

import pytest
from botocore.exceptions import ClientError

from deploy.errors import ContainerError, OverloadedError, ValidationError
from deploy.local import LocalEndpoint
from deploy.stream import NotStreamedWarning, TokenIterator

PROMPT = "Once upon a time"


def parts(body) -> list[dict]:
    """A whole JSON body as SageMaker delivers it through the streaming API: one PayloadPart."""
    return [{"PayloadPart": {"Bytes": json.dumps(body).encode("utf-8")}}]


def read_whole(body) -> list[str]:
    with pytest.warns(NotStreamedWarning, match='"stream": true'):
        return list(TokenIterator(parts(body)))


def test_a_tgi_invocations_body_yields_its_text_as_one_piece():
    assert read_whole([{"generated_text": " and then"}]) == [" and then"]


def test_a_tgi_generate_body_with_details_yields_its_text():
    body = {"generated_text": " the end", "details": {"finish_reason": "length", "generated_tokens": 2}}
    assert read_whole(body) == [" the end"]


def test_an_openai_chat_completion_yields_the_message():
    body = {"object": "chat.completion", "id": "chatcmpl-1", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Warm the milk."}, "finish_reason": "stop"}]}
    assert read_whole(body) == ["Warm the milk."]


def test_a_whole_body_split_across_parts_and_without_a_newline_still_yields():
    raw = json.dumps([{"generated_text": "日本"}]).encode("utf-8")
    with pytest.warns(NotStreamedWarning):
        assert list(TokenIterator([raw[:3], raw[3:17], raw[17:]])) == ["日本"]


def test_several_answers_of_one_body_each_yield():
    completions = {"object": "text_completion", "choices": [
        {"index": 0, "text": " one", "finish_reason": "length"},
        {"index": 1, "text": " two", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert list(TokenIterator(parts(completions))) == [" one", " two"]  # the same shape as its stream's chunks
    assert read_whole([{"generated_text": "a"}, {"generated_text": "b"}]) == ["a", "b"]


def test_a_stream_whose_last_event_carries_generated_text_is_not_a_whole_body():
    events = [{"index": 1, "token": {"id": 5, "text": " a", "special": False}, "generated_text": None},
              {"index": 2, "token": {"id": 6, "text": " b", "special": False}, "generated_text": " a b"}]
    raw = b"".join(b"data:" + json.dumps(e).encode() + b"\n\n" for e in events)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotStreamedWarning)
        assert list(TokenIterator([raw])) == [" a", " b"]


@pytest.mark.parametrize("body, error", [
    ({"error": "Input validation error: `max_new_tokens` must be > 0", "error_type": "validation"}, ValidationError),
    ({"error": {"message": "Model is overloaded", "http_status_code": 429, "type": "overloaded"}}, OverloadedError),
    ({"error": {"message": "no type, only a status", "http_status_code": 422}}, ValidationError),
    ({"error": "unknown kind", "error_type": "something_new"}, ContainerError),
])
def test_a_whole_error_body_raises_its_typed_error(body, error):
    with pytest.raises(error):
        list(TokenIterator(parts(body)))


# --- through the real container, runtime API and boto3 -------------------------------------------

@pytest.fixture(scope="module")
def endpoint(tiny_model_dir):
    with LocalEndpoint(tiny_model_dir, endpoint_name="not-streamed", env={"RESPONSE_CACHE_SIZE": "0"}) as local:
        yield local


def invoke(endpoint, body: dict, streaming: bool):
    client = endpoint.client()
    call = client.invoke_endpoint_with_response_stream if streaming else client.invoke_endpoint
    return call(EndpointName=endpoint.endpoint_name, Body=json.dumps(body), ContentType="application/json")


@pytest.mark.parametrize("body, text_of", [
    ({"inputs": PROMPT, "parameters": {"max_new_tokens": 6, "return_full_text": False}},
     lambda answer: answer[0]["generated_text"]),
    ({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 6},
     lambda answer: answer["choices"][0]["message"]["content"]),
], ids=["tgi", "chat"])
def test_a_forgotten_stream_flag_yields_the_whole_answer_once_and_says_why(endpoint, body, text_of):
    expected = text_of(json.loads(invoke(endpoint, body, streaming=False)["Body"].read()))
    assert expected.strip()
    with pytest.warns(NotStreamedWarning, match='"stream": true') as caught:
        pieces = list(TokenIterator(invoke(endpoint, body, streaming=True)["Body"]))
    assert pieces == [expected]
    assert len(caught) == 1
    with warnings.catch_warnings():  # and with the flag, tokens stream without a warning
        warnings.simplefilter("error", NotStreamedWarning)
        streamed = list(TokenIterator(invoke(endpoint, {**body, "stream": True}, streaming=True)["Body"]))
    assert len(streamed) > 1 and "".join(streamed) == expected


def test_a_rejected_whole_request_is_an_error_not_an_empty_stream(endpoint):
    body = {"inputs": PROMPT, "parameters": {"max_new_tokens": 0}}
    with pytest.raises(ClientError) as caught:  # SageMaker's ModelError: the container answered 4xx
        list(TokenIterator(invoke(endpoint, body, streaming=True)["Body"]))
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert "max_new_tokens" in caught.value.response["Error"]["Message"]
