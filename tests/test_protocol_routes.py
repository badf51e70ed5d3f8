"""The app serves what the protocols' route tables list, and each route answers its HTTP errors
in its own protocol's error body (today's bodies byte for byte: TGI's ``{"error", "error_type"}``,
which TGI's OpenAI routes answer too)."""

from __future__ import annotations

import pytest

from inprocess import in_process_client
from sluice.http import app as http_app
from sluice.protocols.registry import ROUTES
from sluice.protocols.route import Route
from sluice.protocols.tgi.routes import GENERATE

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
