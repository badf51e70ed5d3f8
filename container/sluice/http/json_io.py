"""Request-side HTTP plumbing shared by the routes: JSON bodies, JSON errors, client presence."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Callable

from flask import Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..errors import (
    DeserializeError,
    InternalError,
    MalformedJSONError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnsupportedMediaTypeError,
)
from ..wire.framing import dump_json
from .request_body import read_request_body

log = logging.getLogger("sluice.http")

# serde_json, which TGI's router parses bodies with, refuses the 128th level of nesting.
JSON_MAX_DEPTH = 127
# Only a \uD800-\uDFFF escape can put a lone surrogate in a string (the UTF-8 decoder refuses
# encoded ones); bodies without one skip the exact test.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dump_json(payload), status=status, headers=headers, content_type="application/json")


def error_response(error: ServerError, body: Callable[[ServerError], dict] = ServerError.body) -> Response:
    """``error`` as JSON with its status, in the shape ``body`` writes (the route's protocol's)."""
    return json_response(body(error), status=error.status)


def is_json_content_type(value: str | None) -> bool:
    kind = (value or "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def read_json_body(payload_limit: int, incoming=request):
    """The request's JSON, or a ServerError with the status TGI/axum would answer. ``incoming``:
    Flask's request, or anything with its ``environ`` and ``content_type`` (``generation_wsgi``)."""
    raw = read_request_body(incoming.environ, payload_limit)  # 413 / 400 / 408 before anything else
    if not is_json_content_type(incoming.content_type):
        raise UnsupportedMediaTypeError()
    check_content_encoding(incoming.environ.get("HTTP_CONTENT_ENCODING"))
    try:
        return parse_json(raw)
    except UnicodeDecodeError as error:
        raise MalformedJSONError(f"invalid UTF-8: {error.reason} at byte {error.start}") from None
    except ValueError as error:
        raise MalformedJSONError(str(error)) from None


def check_content_encoding(value: str | None) -> None:
    """Bodies are read as sent: a compressed one (``Content-Encoding: gzip``) would otherwise be
    parsed as if it were JSON text and fail with a misleading UTF-8 error, and one merely labelled
    compressed would be served as if the label were not there. Any coding but ``identity`` is
    RFC 9110's 415."""
    codings = [part.strip().lower() for part in (value or "").split(",") if part.strip()]
    unsupported = [coding for coding in codings if coding != "identity"]
    if unsupported:
        raise UnsupportedMediaTypeError(f"Unsupported Content-Encoding `{', '.join(unsupported)}`: "
                                        "send the body uncompressed")


def parse_json(raw: bytes):
    """``raw`` parsed as strictly as serde_json (TGI's parser) does, so that nothing after this
    meets what TGI would refuse: non-UTF-8 text, NaN/Infinity, nesting past serde_json's limit
    (which also keeps every later recursive walk, json.dumps included, off the stack limit) and
    lone surrogates (which cannot be encoded when echoed back). Raises ValueError, or
    DeserializeError (a 422, as serde's) for a key repeated in one object."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("recursion limit exceeded") from None
    # A body with fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if raw.count(b"[") + raw.count(b"{") > JSON_MAX_DEPTH and _nests_deeper_than(value, JSON_MAX_DEPTH):
        raise ValueError("recursion limit exceeded")
    if _ESCAPED_SURROGATE.search(raw) and _has_lone_surrogate(value):
        raise ValueError("lone surrogate in hex escape")
    return value


def _unique_keys(pairs: list) -> dict:
    """An object whose keys are unique. Python keeps the last of repeated keys, so the first
    value would be dropped without a word; serde refuses a repeated field (``duplicate field``,
    a 422), and so does this, in every object. (Costs ~3 us on a small body.)"""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise DeserializeError(f"duplicate field `{repeated}`")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A JSON number as a float; one too large for a double (``1e400``) is an error, not inf."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _nests_deeper_than(value, limit: int) -> bool:
    """Whether arrays/objects nest deeper than ``limit``; iterative, so depth cannot overflow it."""
    pending = [(value, 1)] if isinstance(value, (list, dict)) else []
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, (list, dict)))
    return False


def _has_lone_surrogate(value) -> bool:
    """UTF-8 has no encoding for a lone surrogate: re-encoding the value is the cheapest exact test
    (keys included), and runs only for bodies with a surrogate escape."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def register_error_handlers(app, payload_limit: int, body: Callable[[ServerError], dict] = ServerError.body) -> None:
    """Every error leaves as JSON, in the shape ``body`` writes for the request's route (its
    protocol's error body); tracebacks go to the log only."""

    @app.errorhandler(ServerError)
    def _server_error(error: ServerError):
        return error_response(error, body)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return http_error_response(error, request.method, request.path, payload_limit, body)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalError(), body)


def http_error_response(error: HTTPException, method: str, path: str, payload_limit: int,
                        body: Callable[[ServerError], dict] = ServerError.body) -> Response:
    """werkzeug's HTTP errors as the route's JSON errors (a 404 or 405 with TGI's texts)."""
    if isinstance(error, NotFound):
        return error_response(NotFoundError(f"Route {method} {path} not found"), body)
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or []))
        response = error_response(MethodNotAllowedError(f"Method {method} not allowed on {path}; allowed: {allowed}"),
                                  body)
        response.headers["Allow"] = allowed
        return response
    if isinstance(error, RequestEntityTooLarge):
        return error_response(PayloadTooLargeError(payload_limit), body)
    return json_response({"error": error.description or error.name, "error_type": "http"}, error.code or 500)
