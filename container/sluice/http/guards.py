"""Checks that run before any route: no redirects (never werkzeug's HTML), and the API key."""

from __future__ import annotations

import hmac

from flask import Flask, request
from werkzeug.routing import RequestRedirect

from ..errors import NotFoundError, UnauthorizedError


def bearer_token(header: str) -> bytes | None:
    """The token of ``Authorization: Bearer <token>`` as the bytes the client sent (WSGI hands
    header values over latin-1 decoded), or None. Only the scheme word is case-insensitive."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        return token.strip(" \t").encode("latin-1")
    except UnicodeEncodeError:  # not a byte string a client could have sent
        return None


def key_bytes(api_key: str) -> bytes:
    """``API_KEY`` as the bytes in the environment (Python decodes it with surrogateescape)."""
    return api_key.encode("utf-8", "surrogateescape")


def register_guards(app: Flask, api_key: str | None, protected: set[str], admin: tuple[str, ...] = ()) -> None:
    """``protected``: the paths whose POST needs the API key (the generation routes, /tokenize);
    ``admin``: path prefixes whose every method needs it (``/adapters``: registering weights)."""
    check_key = api_key_check(api_key)

    @app.before_request
    def refuse_redirects():
        """Flask answers a routing redirect with werkzeug's HTML page, past every error handler;
        a path that only matches after a redirect is not a route here. gunicorn reads a target
        starting with ``//`` as ``//host/path`` (``//invocations`` would arrive as ``/``): not a
        route either."""
        raw_target = request.environ.get("RAW_URI", "")
        if isinstance(request.routing_exception, RequestRedirect) or raw_target.startswith("//"):
            raise NotFoundError(f"Route {request.method} {raw_target or request.path} not found")

    @app.before_request
    def require_api_key():
        """With API_KEY set, inference routes need the bearer token (TGI); health stays open."""
        path = request.path
        guarded = (request.method == "POST" and path in protected) or any(
            path == prefix or path.startswith(prefix + "/") for prefix in admin)
        if check_key is not None and guarded:
            check_key(request.headers)


def api_key_check(api_key: str | None):
    """None without ``API_KEY``; else a check of a request's headers that raises 401 unless they
    carry ``Authorization: Bearer <API_KEY>``."""
    if not api_key:
        return None
    key = key_bytes(api_key)

    def check(headers) -> None:
        token = bearer_token(headers.get("Authorization", ""))
        if token is None or not hmac.compare_digest(token, key):
            raise UnauthorizedError()

    return check
