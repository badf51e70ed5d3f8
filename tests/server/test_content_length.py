"""Every answer that is not a token stream carries Content-Length, errors included, on every route.

SageMaker asynchronous endpoints reject chunked responses (djl-serving#2567): an async invocation
whose container answers ``Transfer-Encoding: chunked`` fails, however good the body. So each route
of the app is called through the real server (gunicorn over loopback) with a request it answers
and with requests it refuses, and every such answer must declare its length and be that long. The
route list is checked against the app's own, so a new route cannot slip past.
"""

from __future__ import annotations

import http.client
import json
from types import SimpleNamespace

import pytest

from sluice.config import Config
from sluice.http.app import create_app

TINY = {"max_new_tokens": 2}
# (method, path) -> requests: (body, content type). Streaming routes get only requests refused
# before a stream starts; their streams are chunked by design and never go to an async endpoint.
REQUESTS = {
    ("GET", "/ping"): [(None, None)],
    ("GET", "/health"): [(None, None)],
    ("GET", "/info"): [(None, None)],
    ("GET", "/v1/models"): [(None, None)],
    ("GET", "/metrics"): [(None, None)],
    ("POST", "/tokenize"): [({"inputs": "Hello"}, None), (b"{not json", None)],
    ("GET", "/"): [(None, None)],
    ("POST", "/"): [({"inputs": "Hi", "parameters": TINY}, None), ({"inputs": "Hi", "parameters": {"temperature": -1}},
                                                                   None)],
    ("POST", "/invocations"): [({"inputs": "Hi", "parameters": TINY}, None),
                               ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, None),
                               ({"prompt": "Hi", "max_tokens": 2}, None), ({"neither": 1}, None),
                               (b"{not json", None), (b"inputs=Hi", "application/x-www-form-urlencoded"),
                               ({"requestType": "NEW_SESSION"}, None)],  # sessions are off here: a 400
    ("POST", "/generate"): [({"inputs": "Hi", "parameters": TINY}, None), ({"inputs": ""}, None)],
    ("POST", "/generate_stream"): [({"inputs": "Hi", "parameters": {"top_p": 2}}, None)],
    ("POST", "/v1/chat/completions"): [({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}, None),
                                       ({"messages": []}, None)],
    ("POST", "/v1/completions"): [({"prompt": "Hi", "max_tokens": 2}, None), ({"prompt": "Hi", "n": 0}, None)],
    ("POST", "/adapters"): [({"name": "a"}, None), ({"name": "a", "src": "/no/such/dir"}, None)],
    ("GET", "/adapters"): [(None, None)],
    ("DELETE", "/adapters/<path:name>"): [(None, None)],  # no adapter has that name: a 404
    ("POST", "/no/such/route"): [({"inputs": "Hi"}, None)],
    ("DELETE", "/invocations"): [(None, None)],
}


def app_routes() -> set[tuple[str, str]]:
    app = create_app(SimpleNamespace(service=None, error=None), Config(model_id="m"))
    return {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_the_requests_below_cover_every_route_of_the_app():
    assert app_routes() - set(REQUESTS) == set()


def call(url: str, method: str, path: str, body, content_type) -> tuple[int, dict, bytes]:
    host, port = url.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    headers = {"Content-Type": content_type or "application/json"} if data is not None else {}
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(("method", "path"), sorted(REQUESTS), ids=lambda value: str(value))
def test_every_answer_declares_its_length(server, method, path):
    for body, content_type in REQUESTS[(method, path)]:
        status, headers, data = call(server.url, method, path, body, content_type)
        where = f"{method} {path} {body!r} -> {status}"
        assert "chunked" not in headers.get("transfer-encoding", ""), where
        assert headers.get("content-length") == str(len(data)), f"{where}: {headers}"


def test_both_kinds_of_answer_were_exercised(server):
    """The table above reaches successes and errors alike, and the check can see chunking: a
    token stream, the one answer allowed to be chunked, is (else all of this would prove little)."""
    statuses = {call(server.url, m, p, *request)[0] for (m, p), requests in REQUESTS.items() for request in requests}
    assert 200 in statuses and {400, 404, 405, 422} <= statuses
    status, headers, _ = call(server.url, "POST", "/generate_stream", {"inputs": "Hi", "parameters": TINY}, None)
    assert status == 200 and headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
