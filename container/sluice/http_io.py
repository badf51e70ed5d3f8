"""Request-side HTTP plumbing shared by the routes: JSON bodies, JSON errors, client presence."""

from __future__ import annotations

import json
import logging
import select
import socket

from flask import Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .errors import (InternalError, MalformedJSONError, MethodNotAllowedError, NotFoundError,
                     PayloadTooLargeError, ServerError, UnsupportedMediaTypeError)
from .framing import dump_json
from .request_body import read_request_body

log = logging.getLogger("sluice.http")


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dump_json(payload), status=status, headers=headers, content_type="application/json")


def error_response(error: ServerError) -> Response:
    return json_response(error.body(), status=error.status)


def is_json_content_type(value: str | None) -> bool:
    kind = (value or "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def read_json_body(payload_limit: int):
    """The request's JSON, or a ServerError with the status TGI/axum would answer."""
    raw = read_request_body(request.environ, payload_limit)  # 413 / 400 / 408 before anything else
    if not is_json_content_type(request.content_type):
        raise UnsupportedMediaTypeError()
    try:
        return json.loads(raw)
    except UnicodeDecodeError as error:
        raise MalformedJSONError(f"invalid UTF-8: {error.reason} at byte {error.start}") from None
    except ValueError as error:
        raise MalformedJSONError(str(error)) from None


def client_gone_probe(environ) -> callable:
    """A callable telling whether the client closed its connection (peeks at gunicorn's socket)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return gone


def register_error_handlers(app, payload_limit: int) -> None:
    """Every error leaves as JSON; tracebacks go to the log only."""

    @app.errorhandler(ServerError)
    def _server_error(error: ServerError):
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if isinstance(error, NotFound):
            return error_response(NotFoundError(f"Route {request.method} {request.path} not found"))
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(error.valid_methods or []))
            response = error_response(MethodNotAllowedError(
                f"Method {request.method} not allowed on {request.path}; allowed: {allowed}"))
            response.headers["Allow"] = allowed
            return response
        if isinstance(error, RequestEntityTooLarge):
            return error_response(PayloadTooLargeError(payload_limit))
        return json_response({"error": error.description or error.name, "error_type": "http"}, error.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalError())
