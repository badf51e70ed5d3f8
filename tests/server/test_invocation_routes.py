"""``route=`` in ``X-Amzn-SageMaker-Custom-Attributes`` through the real server: an ``/invocations``
body goes to the inference route it names, beside other attributes (``x-use-cache=0``); a path
that is no inference route is a 404 JSON error (the fake engine's table: unit/test_openai_choices_and_routes)."""

from __future__ import annotations

from http_client import post, sse_events, stream_raw

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
MESSAGES = [{"role": "user", "content": "Name a cheese."}]


def test_route_sends_the_body_to_the_chat_route_beside_the_cache_opt_out(server):
    response = post(server.url, {"messages": MESSAGES, "max_tokens": 4},
                    headers={ATTRIBUTES: "x-use-cache=0,route=/v1/chat/completions"})
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert response.headers["x-sluice-cache"] == "miss"


def test_route_to_tgis_generate_answers_its_bare_object_and_streams_there_too(server):
    body = {"inputs": "Name a cheese.", "parameters": {"max_new_tokens": 3}}
    answer = post(server.url, body, headers={ATTRIBUTES: "route=/generate"}).json()
    assert isinstance(answer, dict) and "generated_text" in answer  # /invocations itself answers a list
    response, raw = stream_raw(server.url, dict(body, stream=True), headers={ATTRIBUTES: "route=/generate_stream"})
    events = sse_events(raw)
    assert response.status_code == 200 and len(events) == 3 and events[-1]["generated_text"] is not None


def test_an_unknown_route_is_a_404_json_error(server):
    response = post(server.url, {"inputs": "hi"}, headers={ATTRIBUTES: "x-use-cache=0, route=/v1/embeddings"})
    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found" and "route=/v1/embeddings" in response.json()["error"]


def test_two_different_routes_are_a_404_naming_both_not_the_last_winning(server):
    body = {"inputs": "hi", "prompt": "hi", "parameters": {"max_new_tokens": 2}}
    response = post(server.url, body, headers={ATTRIBUTES: "route=/generate, x-use-cache=0, route=/v1/completions"})
    assert response.status_code == 404
    assert response.json() == {"error": "Custom attributes name more than one route: route=/generate, "
                                        "route=/v1/completions", "error_type": "not_found"}
    same = post(server.url, body, headers={ATTRIBUTES: "route=/generate,route=/generate"})
    assert same.status_code == 200 and "generated_text" in same.json()
