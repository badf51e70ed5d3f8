"""The app's routes and JSON errors without a model: the app serves what the protocols' route
tables list, each route answers its HTTP errors in its own protocol's error body (TGI's
``{"error", "error_type"}``, which TGI's OpenAI routes answer too), and what leaves before or
beside a model (a routing redirect, a failed load, a tokenizer failure) is JSON with no internals.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from fake_engine import in_process_client
from sluice.config import Config, TokenLimits
from sluice.errors import ValidationError
from sluice.http import app as http_app
from sluice.http.app import create_app
from sluice.protocols.registry import ROUTES
from sluice.protocols.route import Route
from sluice.protocols.tgi.routes import GENERATE
from sluice.serving.validation import Validator
from sluice.wire.framing import dump_json

TGI_422 = (b'{"error":"Failed to deserialize the JSON body into the target type: missing field `inputs`",'
           b'"error_type":"validation"}')


@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_every_route_of_every_protocol_is_served(route):
    answer = in_process_client().post(route.path, data="{", content_type="application/json")
    assert answer.status_code == 400  # the body was read: the route exists and takes POST
    assert answer.get_json()["error_type"] == "bad_request"


def test_tgi_and_openai_routes_answer_http_errors_in_tgis_error_body():
    client = in_process_client()
    assert client.post("/generate", json={}).data == TGI_422
    assert client.post("/invocations", json={"inputs": 1}).get_json()["error_type"] == "validation"
    chat = client.post("/v1/chat/completions", json={"messages": "hi"})
    assert chat.status_code == 422 and set(chat.get_json()) == {"error", "error_type"}


def test_a_protocol_chooses_its_routes_http_error_body(monkeypatch):
    """The body is the route's protocol's choice: a protocol with another shape gets it on its own
    routes, an error raised before the body is parsed (415) included; other routes keep theirs."""
    shaped = Route.to("/shaped", "shaped", GENERATE, lambda error: {"message": error.message, "code": error.status})
    monkeypatch.setattr(http_app, "ROUTES", (*ROUTES, shaped))
    client = in_process_client()
    assert client.post("/shaped", json={}).get_json() == {
        "message": "Failed to deserialize the JSON body into the target type: missing field `inputs`", "code": 422}
    assert client.post("/shaped", data="x", content_type="text/plain").get_json()["code"] == 415
    assert client.post("/generate", json={}).data == TGI_422
    assert client.post("/nowhere", json={}).get_json()["error_type"] == "not_found"  # no route: the server's


def test_dump_json_writes_non_finite_floats_as_null():
    payload = {"a": [float("nan"), float("-inf"), 1.5], "b": ({"c": float("inf")},), "d": "é"}
    assert dump_json(payload) == '{"a":[null,null,1.5],"b":[{"c":null}],"d":"é"}'
    assert dump_json({"logprob": -0.25, "text": "x"}) == '{"logprob":-0.25,"text":"x"}'


def in_process_app(error: BaseException | None = None):
    """The real app over a host that never loaded (no model needed): what /ping and friends say then."""
    return create_app(SimpleNamespace(service=None, error=error), Config(model_id="m"))


def test_a_routing_redirect_leaves_as_json():
    app = in_process_app()
    app.add_url_rule("/slashed/", "slashed", lambda: "unreachable")  # werkzeug redirects /slashed here
    response = app.test_client().get("/slashed")
    assert response.status_code == 404 and response.is_json
    assert response.get_json() == {"error": "Route GET /slashed not found", "error_type": "not_found"}


def test_a_failed_load_answers_a_stable_503_without_internals():
    app = in_process_app(OSError("/secret/models/llama/config.json: permission denied"))
    for path, method in (("/ping", "get"), ("/invocations", "post")):
        response = getattr(app.test_client(), method)(path, json={"inputs": "x"})
        assert response.status_code == 503
        assert response.get_json() == {"error": "Model failed to load; see the server log", "error_type": "healthcheck"}


def test_tokenizer_failure_is_a_stable_422_and_the_detail_is_logged(caplog):
    def tokenizer(text, add_special_tokens):
        raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")

    validator = Validator(tokenizer, TokenLimits(max_input_tokens=8, max_total_tokens=16), 4)
    with caplog.at_level(logging.ERROR, logger="sluice.validation"), pytest.raises(ValidationError) as raised:
        validator.tokenize("x")
    assert raised.value.body() == {"error": "Input validation error: tokenizer error: the input could not be tokenized",
                                   "error_type": "validation"}
    assert "TextEncodeInput" in caplog.text
