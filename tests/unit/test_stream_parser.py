"""The client-side stream parser against the container's own wire encoders (a round-trip contract).

Streams are built with ``sluice.wire.framing`` (what the container writes) and cut into PayloadParts at
every byte offset, because SageMaker does not align parts with events, lines or UTF-8 characters.
"""

import json

import pytest
from botocore.exceptions import EventStreamError

from blog_token_iterator import BlogTokenIterator
from deploy.errors import (
    ContainerError,
    GenerationError,
    InternalStreamFailure,
    ModelStreamError,
    OverloadedError,
    StreamFormatError,
    ValidationError,
)
from deploy.stream import EventIterator, TokenIterator
from sluice.wire.framing import SSE_DONE, SSE_KEEPALIVE, encode_ndjson, encode_sse

TEXTS = ["Hello", ",", " 世界", " こんにちは", " 🙂🎉", " café", "\n", "end"]


def token_events(texts=TEXTS, special_end=True, details=None):
    """TGI-shaped stream events: one per token, the last carrying generated_text."""
    tokens = [{"id": i + 10, "text": t, "logprob": -0.5, "special": False}
              for i, t in enumerate(texts)]
    if special_end:
        tokens.append({"id": 2, "text": "</s>", "logprob": -0.1, "special": True})
    events = [{"index": i + 1, "token": tok, "generated_text": None, "details": None}
              for i, tok in enumerate(tokens)]
    events[-1]["generated_text"] = "".join(texts)
    events[-1]["details"] = details
    return events


def sse(events):
    return b"".join(encode_sse(event) for event in events)


def parts(data, *cuts):
    """boto3-shaped events holding ``data`` cut at the given offsets."""
    bounds = [0, *cuts, len(data)]
    return [{"PayloadPart": {"Bytes": data[a:b]}} for a, b in zip(bounds, bounds[1:], strict=False)]


def one_byte_parts(data):
    return [{"PayloadPart": {"Bytes": data[i:i + 1]}} for i in range(len(data))]


def every_two_part_split(data):
    for offset in range(len(data) + 1):
        yield offset, parts(data, offset)


def test_stream_contains_multibyte_characters_so_splits_land_inside_them():
    data = sse(token_events())
    continuation_bytes = [i for i, byte in enumerate(data) if 0x80 <= byte < 0xC0]
    assert continuation_bytes, "the contract stream must exercise splits inside UTF-8 characters"


@pytest.mark.parametrize("name, transform", [
    ("sse", lambda data: data),
    ("no trailing newline", lambda data: data.rstrip(b"\n")),
    ("crlf", lambda data: data.replace(b"\n", b"\r\n")),
    ("data without space", lambda data: data.replace(b"data: ", b"data:")),
    ("keep-alives", lambda data: SSE_KEEPALIVE + data.replace(b"\n\n", b"\n\n" + SSE_KEEPALIVE)),
    ("event and id fields", lambda data: data.replace(b"data: ", b"event: message\nid: 7\ndata: ")),
])
def test_tokens_survive_every_two_part_split(name, transform):
    data = transform(sse(token_events()))
    for offset, stream in every_two_part_split(data):
        tokens = TokenIterator(stream)
        assert list(tokens) == TEXTS, f"{name}: split at byte {offset}"
        assert tokens.generated_text == "".join(TEXTS)


@pytest.mark.parametrize("encode", [sse, lambda events: b"".join(map(encode_ndjson, events))],
                         ids=["sse", "ndjson"])
def test_events_survive_one_byte_parts(encode):
    events = token_events(details={"finish_reason": "eos_token", "generated_tokens": 9,
                                   "seed": None, "input_length": 3})
    iterator = EventIterator(one_byte_parts(encode(events)))
    assert list(iterator) == events
    assert iterator.events == len(events)
    assert iterator.last_event == events[-1]
    assert iterator.details["finish_reason"] == "eos_token"


def test_ndjson_without_final_newline_yields_the_last_event():
    events = token_events()
    data = b"".join(map(encode_ndjson, events)).rstrip(b"\n")
    for offset, stream in every_two_part_split(data):
        assert list(EventIterator(stream)) == events, f"split at byte {offset}"


def test_special_tokens_are_skipped_by_default_and_kept_on_request():
    data = sse(token_events())
    assert "</s>" not in list(TokenIterator(parts(data)))
    assert list(TokenIterator(parts(data), skip_special_tokens=False))[-1] == "</s>"


def test_raw_byte_chunks_are_accepted_like_requests_iter_content():
    data = sse(token_events())
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    assert "".join(TokenIterator(chunks)) == "".join(TEXTS)


def test_done_ends_the_stream_even_if_bytes_follow():
    data = sse(token_events(special_end=False)) + SSE_DONE + b"data: not json\n\n"
    iterator = EventIterator(parts(data, 5))
    assert len(list(iterator)) == len(TEXTS)
    assert iterator.done


def test_chat_completion_chunks_yield_delta_content():
    chunks = [{"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]}
        for text in ["Bonjour", " 世界", "!"]]
    chunks.append({"object": "chat.completion.chunk", "choices": []})  # usage chunk
    data = sse(chunks) + SSE_DONE
    for offset, stream in every_two_part_split(data):
        assert list(TokenIterator(stream)) == ["Bonjour", " 世界", "!"], f"split at {offset}"


@pytest.mark.parametrize("error_type, exception", [
    ("validation", ValidationError), ("generation", GenerationError),
    ("overloaded", OverloadedError), ("template_error", ContainerError),
])
def test_in_band_error_event_raises_a_typed_exception_after_the_earlier_tokens(error_type,
                                                                              exception):
    error = {"error": "Request failed during generation: boom", "error_type": error_type}
    data = sse(token_events(special_end=False)[:3]) + encode_sse(error)
    received = []
    with pytest.raises(exception) as caught:
        for token in TokenIterator(one_byte_parts(data)):
            received.append(token)
    assert received == TEXTS[:3]
    assert isinstance(caught.value, ContainerError)
    assert caught.value.error_type == error_type
    assert "boom" in str(caught.value)


def test_openai_style_error_event_in_a_chat_stream_raises():
    data = encode_sse({"error": {"message": "Template error: x", "http_status_code": 422}})
    with pytest.raises(ContainerError, match="Template error"):
        list(TokenIterator(parts(data)))


def test_model_stream_error_event_raises_with_its_error_code():
    stream = parts(sse(token_events())[:40]) + [
        {"ModelStreamError": {"Message": "connection reset", "ErrorCode": "StreamBroken"}}]
    with pytest.raises(ModelStreamError) as caught:
        list(TokenIterator(stream))
    assert caught.value.error_code == "StreamBroken"
    assert "connection reset" in str(caught.value)


def test_internal_stream_failure_event_raises():
    with pytest.raises(InternalStreamFailure, match="try again"):
        list(EventIterator([{"InternalStreamFailure": {"Message": "try again"}}]))


def test_botocore_event_stream_error_becomes_model_stream_error():
    def boto3_body():
        yield from parts(sse(token_events())[:100])
        raise EventStreamError({"Error": {"Code": "ModelStreamError", "Message": "broken"}},
                               "InvokeEndpointWithResponseStream")

    with pytest.raises(ModelStreamError, match="broken"):
        list(TokenIterator(boto3_body()))


def test_a_line_longer_than_the_bound_is_refused():
    data = b"data: " + b"x" * 5000
    with pytest.raises(StreamFormatError, match="exceeds 1024"):
        list(EventIterator(one_byte_parts(data)[:2000] + parts(data[2000:]), max_line_bytes=1024))


def test_long_streams_of_short_lines_stay_within_the_bound():
    event = encode_sse({"token": {"id": 1, "text": "a", "special": False}})
    stream = ({"PayloadPart": {"Bytes": event * 50}} for _ in range(2000))
    assert sum(1 for _ in TokenIterator(stream, max_line_bytes=len(event) * 2)) == 100_000


def test_garbage_lines_raise_instead_of_being_dropped():
    with pytest.raises(StreamFormatError, match="not an SSE or NDJSON line"):
        list(EventIterator(parts(b"<html>502 Bad Gateway</html>\n")))
    with pytest.raises(StreamFormatError, match="invalid JSON"):
        list(EventIterator(parts(b'data: {"token": \n\n')))


def test_blog_token_iterator_breaks_on_a_keep_alive_where_ours_does_not():
    plain = sse(token_events(special_end=False))
    assert list(BlogTokenIterator(parts(plain, 33))) == TEXTS  # the reference does work ...
    with_keepalive = sse(token_events(special_end=False)[:2]) + SSE_KEEPALIVE + sse(
        token_events(special_end=False)[2:])
    with pytest.raises(json.JSONDecodeError):  # ... until TGI sends a keep-alive
        list(BlogTokenIterator(parts(with_keepalive)))
    assert list(TokenIterator(parts(with_keepalive))) == TEXTS


@pytest.mark.parametrize("error, exception", [
    ({"message": "Model is overloaded", "http_status_code": 429, "type": "overloaded"}, OverloadedError),
    ({"message": "Model is overloaded", "http_status_code": 429}, OverloadedError),  # TGI names no type
    ({"message": "Input validation error: x", "http_status_code": 422}, ValidationError),
    ({"message": "Request failed during generation: x", "http_status_code": 424, "type": "generation"},
     GenerationError),
])
def test_openai_style_error_events_raise_the_same_typed_errors_as_tgi_events(error, exception):
    data = sse(token_events(special_end=False)[:2]) + encode_sse({"error": error}) + SSE_DONE
    with pytest.raises(exception, match=error["message"][:10]):
        list(TokenIterator(one_byte_parts(data)))
