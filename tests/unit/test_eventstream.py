"""Our event-stream encoder, read back by botocore's own decoder and response parser.

botocore is what every boto3 user runs, so it is the judge: the bytes must decode with
``botocore.eventstream.EventStreamBuffer`` and parse, with the sagemaker-runtime service model,
into the ``{"PayloadPart": {"Bytes": ...}}`` events and ``EventStreamError`` users see.
"""

import botocore.session
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import create_parser

from deploy.eventstream import EventStreamDecodeError, decode_messages, encode_exception, encode_payload_part


def stream_operation():
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model("InvokeEndpointWithResponseStream")


class ByteSource:
    """The raw body as botocore reads it from urllib3: ``stream()`` yields network chunks."""

    def __init__(self, data: bytes, chunk: int):
        self.data, self.chunk = data, chunk

    def stream(self):
        for i in range(0, len(self.data), self.chunk):
            yield self.data[i:i + self.chunk]

    def close(self):
        pass


def boto3_events(data: bytes, chunk: int = 7):
    """``response["Body"]`` as boto3 builds it from this HTTP 200 response body."""
    operation = stream_operation()
    http_response = {"status_code": 200, "body": ByteSource(data, chunk),
                     "context": {"operation_name": operation.name},
                     "headers": {"content-type": "application/vnd.amazon.eventstream"}}
    return create_parser("rest-json").parse(http_response, operation.output_shape)["Body"]


PAYLOADS = [b'data: {"token":{"text":"\xe6\x97\xa5"}}\n\n', b"", b"\xf0\x9f", b"x" * 70000]


def test_botocore_decodes_payload_parts_byte_for_byte():
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(encode_payload_part(p) for p in PAYLOADS))
    messages = list(buffer)
    assert [m.payload for m in messages] == PAYLOADS
    assert messages[0].headers == {":event-type": "PayloadPart", ":message-type": "event",
                                   ":content-type": "application/octet-stream"}


def test_boto3_event_stream_yields_payload_part_dicts():
    body = b"".join(encode_payload_part(p) for p in PAYLOADS)
    assert list(boto3_events(body)) == [{"PayloadPart": {"Bytes": p}} for p in PAYLOADS]


def test_exception_message_raises_event_stream_error_in_boto3():
    body = encode_payload_part(b"data: {}\n\n") + encode_exception(
        "ModelStreamError", "connection reset", "StreamBroken")
    events = iter(boto3_events(body, chunk=3))
    assert next(events) == {"PayloadPart": {"Bytes": b"data: {}\n\n"}}
    with pytest.raises(EventStreamError) as caught:
        next(events)
    assert caught.value.response["Error"] == {"Code": "ModelStreamError",
                                              "Message": "connection reset"}


def test_internal_stream_failure_exception_code():
    with pytest.raises(EventStreamError) as caught:
        list(boto3_events(encode_exception("InternalStreamFailure", "oops")))
    assert caught.value.response["Error"]["Code"] == "InternalStreamFailure"


def test_our_decoder_round_trips_and_keeps_the_error_code():
    body = encode_payload_part(b"abc") + encode_exception("ModelStreamError", "m", "StreamBroken")
    payload, error = decode_messages(body)
    assert payload.payload == b"abc"
    assert error.headers[":exception-type"] == "ModelStreamError"
    assert error.payload == b'{"Message": "m", "ErrorCode": "StreamBroken"}'


def test_corrupted_bytes_are_rejected_by_both_decoders():
    corrupt = bytearray(encode_payload_part(b"hello"))
    corrupt[-6] ^= 0x01  # flip a payload bit; the message CRC no longer matches
    with pytest.raises(EventStreamDecodeError, match="checksum"):
        decode_messages(bytes(corrupt))
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(corrupt))
    with pytest.raises(ChecksumMismatch):
        list(buffer)
