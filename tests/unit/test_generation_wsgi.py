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
from sluice.http.app import reply_response
from sluice.http.generation_wsgi import GenerationRoutes, start_reply
from sluice.http.guards import api_key_check
from sluice.serving.exchange import Reply


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


@pytest.mark.parametrize("reply", [
    Reply(payload=[{"generated_text": "Warm the milk, add rennet ✓"}]),
    Reply(status=200, payload={"id": "cmpl-1", "choices": []}, headers={"X-Amzn-SageMaker-Session-Id": "s1"}),
    Reply(chunks=iter([b"", b"data: {}\n\n"]), content_type="text/event-stream",
          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}),
    Reply(chunks=iter([b"", b"{}\n"]), content_type="application/jsonlines"),
    Reply(chunks=[b'data: {"error":"Input validation error","error_type":"validation"}\n\n'],
          content_type="text/event-stream", headers={"Cache-Control": "no-cache"}),  # an in-band error, whole
], ids=["json", "json-with-header", "sse", "jsonlines", "whole-stream"])
def test_a_reply_starts_with_the_status_line_and_headers_werkzeug_would_send(reply):
    def again():  # the same reply afresh (a stream's chunks are read once)
        chunks = reply.chunks if not hasattr(reply.chunks, "__next__") else iter(streamed)
        return Reply(reply.status, reply.payload, chunks, reply.content_type, dict(reply.headers))

    streamed = list(reply.chunks) if hasattr(reply.chunks, "__next__") else None
    ours = call(lambda env, start: start_reply(again(), start), environ())
    seen = {}
    flask_response = reply_response(again())
    body = b"".join(flask_response(environ(), lambda status, headers: seen.update(status=status, headers=headers)))
    assert ours[0] == seen["status"]
    assert list(ours[1].items()) == list(seen["headers"])  # the same headers, in the same order
    assert ours[2] == body
