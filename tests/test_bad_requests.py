"""A battery of bad requests: always a JSON 4xx, never HTML or a 500, and the server keeps serving."""

from __future__ import annotations

import pytest
import requests

from http_client import generate

BAD = [
    ("malformed json", dict(data=b'{"inputs": "x",', headers={"Content-Type": "application/json"}), 400, "bad_request"),
    ("invalid utf-8", dict(data=b'{"inputs": "\xff\xfe"}', headers={"Content-Type": "application/json"}), 400, "bad_request"),
    ("wrong content type", dict(data=b'{"inputs": "x"}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
    ("no content type", dict(data=b'{"inputs": "x"}'), 415, "unsupported_media_type"),
    ("inputs not a string", dict(json={"inputs": ["a", "b"]}), 422, "validation"),
    ("missing inputs", dict(json={"parameters": {}}), 422, "validation"),
    ("body is a list", dict(json=[1, 2]), 422, "validation"),
    ("parameters not an object", dict(json={"inputs": "x", "parameters": "fast"}), 422, "validation"),
    ("temperature as string", dict(json={"inputs": "x", "parameters": {"temperature": "hot"}}), 422, "validation"),
    ("max_new_tokens negative", dict(json={"inputs": "x", "parameters": {"max_new_tokens": -3}}), 422, "validation"),
    ("max_new_tokens fractional", dict(json={"inputs": "x", "parameters": {"max_new_tokens": 2.5}}), 422, "validation"),
    ("seed negative", dict(json={"inputs": "x", "parameters": {"seed": -1}}), 422, "validation"),
    ("stop not a list", dict(json={"inputs": "x", "parameters": {"stop": "###"}}), 422, "validation"),
    ("do_sample as int", dict(json={"inputs": "x", "parameters": {"do_sample": 1}}), 422, "validation"),
    ("stream as string", dict(json={"inputs": "x", "stream": "yes"}), 422, "validation"),
    ("empty inputs", dict(json={"inputs": ""}), 422, "validation"),
    ("too many tokens", dict(json={"inputs": "word " * 3000, "parameters": {"max_new_tokens": 5}}), 422, "validation"),
]


@pytest.mark.parametrize("name, kwargs, status, error_type", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_a_json_error(server, name, kwargs, status, error_type):
    response = requests.post(server.url + "/invocations", timeout=30, **kwargs)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type
    assert "Traceback" not in body["error"]


def test_empty_inputs_message_is_tgis(server):
    response = requests.post(server.url + "/invocations", json={"inputs": ""}, timeout=30)
    assert response.json()["error"] == "Input validation error: `inputs` cannot be empty"


def test_body_over_six_mib_is_413(server):
    body = b'{"inputs": "' + b"a" * (6 * 1024 * 1024 + 10) + b'"}'
    response = requests.post(server.url + "/invocations", data=body, timeout=60,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nope", 404), ("POST", "/v2/generate", 404), ("GET", "/invocations", 405), ("PUT", "/ping", 405),
    ("DELETE", "/invocations", 405),
])
def test_unknown_route_or_method_is_json(server, method, path, status):
    response = requests.request(method, server.url + path, timeout=30)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"error", "error_type"}


def test_server_still_serves_after_the_battery(server):
    for name, kwargs, _, _ in BAD:
        requests.post(server.url + "/invocations", timeout=30, **kwargs)
    assert generate(server.url, "Still alive?", max_new_tokens=3)[0]["generated_text"]
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200


def test_over_long_input_messages_are_tgis(start_server):
    small = start_server(env={"MAX_INPUT_TOKENS": "16", "MAX_TOTAL_TOKENS": "32"})
    response = requests.post(small.url + "/invocations", timeout=30,
                             json={"inputs": "one two three four five six seven eight " * 3,
                                   "parameters": {"max_new_tokens": 4}})
    assert response.status_code == 422
    assert response.json()["error"].startswith("Input validation error: `inputs` must have less than 16 tokens. Given: ")
    response = requests.post(small.url + "/invocations", timeout=30,
                             json={"inputs": "one two", "parameters": {"max_new_tokens": 40}})
    assert response.json()["error"].startswith(
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 32. Given: ")
    assert response.json()["error"].endswith(" `inputs` tokens and 40 `max_new_tokens`")
