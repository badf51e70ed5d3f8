"""SageMaker's request headers, read once into one typed value that travels with the request.

The HTTP layer reads them (``http.sagemaker_headers``); the validated request carries them through
the driver and the service to the engine; the response cache keys on what they select.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from werkzeug.datastructures import Headers

from fake_engine import FakeEngine, fake_service, in_process_client
from sluice.http.sagemaker_headers import read_sagemaker_headers
from sluice.protocols.tgi.body import parse_generate_body
from sluice.request import SageMakerHeaders
from sluice.serving.response_cache import ResponseCache

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def test_custom_attributes_are_every_key_value_pair_in_the_order_sent():
    headers = read_sagemaker_headers(Headers({ATTRIBUTES: "trace=1, route = blue ,flag,,a=b=c,=x"}))
    assert headers.custom_attributes == (("trace", "1"), ("route", "blue"), ("a", "b=c"))
    assert headers.attribute("ROUTE") == "blue" and headers.attribute("missing") is None
    assert headers.use_cache


@pytest.mark.parametrize("sent,use_cache", [
    ({}, True),
    ({"x-use-cache": "0"}, False), ({"X-Use-Cache": "False"}, False), ({"x-use-cache": " no "}, False),
    ({"x-use-cache": "1"}, True),
    ({ATTRIBUTES: "trace=1,x-use-cache=0"}, False), ({ATTRIBUTES: "X-Use-Cache = false"}, False),
    ({ATTRIBUTES: "x-use-cache=1"}, True), ({ATTRIBUTES: "x-use-cache"}, True),
])
def test_the_cache_opt_out_is_read_from_the_header_or_a_custom_attribute(sent, use_cache):
    assert read_sagemaker_headers(Headers(sent)).use_cache is use_cache


def test_the_engine_receives_the_headers_with_the_validated_request():
    engine = FakeEngine()
    client = in_process_client(engine)
    answer = client.post("/invocations", json={"inputs": "hi"},
                         headers={ATTRIBUTES: "trace=blue,x-use-cache=0", "x-use-cache": "1"})
    assert answer.status_code == 200
    assert engine.submitted[-1].sagemaker == SageMakerHeaders(
        use_cache=False, custom_attributes=(("trace", "blue"), ("x-use-cache", "0")))
    client.post("/generate_stream", json={"inputs": "hi"})
    assert engine.submitted[-1].sagemaker == SageMakerHeaders()


@dataclass(frozen=True)
class AdapterHeaders(SageMakerHeaders):
    """A header feature that changes the tokens (as an adapter id will) keys the cache."""

    def cache_scope(self) -> tuple:
        return (self.attribute("adapter"),)


def test_the_response_cache_keys_on_what_the_headers_select():
    service = fake_service(cache=ResponseCache(8))
    request = parse_generate_body({"inputs": "hi"}, service.limits)
    blue = service.validate(request, sagemaker=AdapterHeaders(custom_attributes=(("adapter", "blue"),)))
    service.complete(blue)
    assert service.cached(blue) is not None
    green = service.validate(request, sagemaker=AdapterHeaders(custom_attributes=(("adapter", "green"),)))
    assert service.cached(green) is None
