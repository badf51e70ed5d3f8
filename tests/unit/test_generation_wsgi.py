"""The generation routes' middleware in front of Flask (http/generation_wsgi): which requests it
answers itself, and that what it answers carries the route's JSON error bodies and the API key
check exactly as Flask's handlers and guards would. The routes' behaviour through it is every
other HTTP test (the in-process tier's test client and the real gunicorn server both go through
``app.wsgi_app``)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Response

from sluice.errors import ValidationError
from sluice.http.generation_wsgi import GenerationRoutes
from sluice.http.guards import api_key_check


def environ(path="/generate", method="POST", raw_uri=None, **headers):
    body = b'{"inputs": "hi"}'
    env = {"PATH_INFO": path, "REQUEST_METHOD": method, "RAW_URI": raw_uri or path, "CONTENT_TYPE": "application/json",
           "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    env.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return env


class Recorder:
    def __init__(self, fail=None):
        self.answered, self.to_flask, self.fail = [], [], fail

    def flask(self, env, start_response):
        self.to_flask.append(env["PATH_INFO"])
        start_response("418 I'M A TEAPOT", [])
        return [b"flask"]

    def answer(self, route, incoming):
        if self.fail is not None:
            raise self.fail
        self.answered.append((route.path, incoming.content_type, incoming.headers.get("Accept")))
        return Response(b"{}", content_type="application/json")


def call(app, env):
    seen = {}

    def start_response(status, headers):
        seen.update(status=status, headers=dict(headers))

    body = b"".join(app(env, start_response))
    return seen["status"], seen["headers"], body


@pytest.mark.parametrize("path", ["/generate", "/generate_stream", "/v1/completions", "/v1/chat/completions",
                                  "/invocations"])
def test_a_post_to_a_generation_route_is_answered_by_the_routes_handler(path):
    recorder = Recorder()
    status, headers, body = call(GenerationRoutes(recorder.flask, recorder.answer, None, 1024),
                                 environ(path, accept="text/event-stream"))
    assert status == "200 OK" and body == b"{}" and headers["Content-Type"] == "application/json"
    assert recorder.answered == [(path, "application/json", "text/event-stream")] and not recorder.to_flask


@pytest.mark.parametrize("env", [environ("/generate", method="GET"), environ("/generate/"), environ("/info"),
                                 environ("/", raw_uri="//generate"), environ("/tokenize")])
def test_everything_else_goes_to_flask(env):
    recorder = Recorder()
    status, _, body = call(GenerationRoutes(recorder.flask, recorder.answer, None, 1024), env)
    assert status.startswith("418") and body == b"flask" and not recorder.answered


def test_errors_leave_in_the_routes_json_body_and_unexpected_ones_are_logged_as_500(caplog):
    recorder = Recorder(fail=ValidationError("`inputs` cannot be empty"))
    status, headers, body = call(GenerationRoutes(recorder.flask, recorder.answer, None, 1024), environ())
    assert status == "422 UNPROCESSABLE ENTITY" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "Input validation error: `inputs` cannot be empty", "error_type": "validation"}
    recorder.fail = RuntimeError("a bug")
    with caplog.at_level(logging.ERROR, logger="sluice.http"):
        status, _, body = call(GenerationRoutes(recorder.flask, recorder.answer, None, 1024), environ())
    assert status.startswith("500") and json.loads(body) == {"error": "Internal server error", "error_type": "internal"}
    assert "unhandled error on POST /generate" in caplog.text and "a bug" in caplog.text


def test_with_an_api_key_a_generation_post_needs_the_bearer_token():
    recorder = Recorder()
    app = GenerationRoutes(recorder.flask, recorder.answer, api_key_check("s3cret"), 1024)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
        status, _, body = call(app, environ(**headers))
        assert status.startswith("401") and json.loads(body)["error_type"] == "unauthorized"
    assert not recorder.answered
    status, _, _ = call(app, environ(authorization="Bearer s3cret"))
    assert status == "200 OK" and len(recorder.answered) == 1
