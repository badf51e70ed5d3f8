"""The generation routes' POSTs, answered in front of Flask's request machinery.

Nearly every request a server sees is a POST to one of a few exact paths (``protocols.registry``).
For each, Flask would push a request and an app context, match the URL map, run the guards
(``guards``), dispatch, and pop it all again: about a tenth of the worker's CPU for a one-token
answer, paid in the burst of requests that opens a busy minute, when it delays every first token.
``GenerationRoutes`` is the app's ``wsgi_app`` middleware: an exact POST to a generation route
runs the same handler (``Routes.reply``) with the request read straight from the WSGI environ,
its API key checked as the guard checks it, and any error written in the route's protocol's body
as Flask's error handlers write it; everything else (other paths and methods, a trailing slash,
``//`` targets) goes to Flask unchanged. An answer (``Reply``) is started here with the status
line and headers werkzeug's ``Response`` would send (``start_reply``), without building one and
wrapping its stream in werkzeug's iterators.
"""

from __future__ import annotations

import logging
from typing import Callable

from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from ..errors import InternalError, ServerError
from ..protocols.registry import ROUTES
from ..protocols.route import Route
from ..serving.exchange import Reply
from ..wire.framing import dump_json
from .json_io import error_response, http_error_response

log = logging.getLogger("sluice.http")


class EnvironRequest:
    """What ``Routes.reply`` reads of a request, as Flask's ``request`` gives it."""

    __slots__ = ("environ", "headers")

    def __init__(self, environ: dict):
        self.environ = environ
        self.headers = EnvironHeaders(environ)

    @property
    def content_type(self) -> str | None:
        return self.environ.get("CONTENT_TYPE")


class GenerationRoutes:
    """Flask's ``wsgi_app`` with the generation routes' POSTs taken first (the module's docstring)."""

    def __init__(self, flask_wsgi, answer: Callable[[Route, EnvironRequest], Reply | object],
                 check_api_key: Callable[[EnvironHeaders], None] | None, payload_limit: int):
        """``flask_wsgi``: Flask's own ``wsgi_app``; ``answer``: the routes' handler;
        ``check_api_key``: None without ``API_KEY``."""
        self._flask = flask_wsgi
        self._payload_limit = payload_limit
        self._answer = answer
        self._check_api_key = check_api_key
        self._routes = {route.path: route for route in ROUTES}

    def __call__(self, environ, start_response):
        route = self._routes.get(environ.get("PATH_INFO"))
        if route is None or environ.get("REQUEST_METHOD") != "POST" or environ.get("RAW_URI", "").startswith("//"):
            return self._flask(environ, start_response)
        incoming = EnvironRequest(environ)
        try:
            if self._check_api_key is not None:
                self._check_api_key(incoming.headers)
            response = self._answer(route, incoming)
            if isinstance(response, Reply):
                return start_reply(response, start_response)
        except ServerError as error:
            response = error_response(error, route.error_body)
        except HTTPException as error:
            response = http_error_response(error, "POST", route.path, self._payload_limit, route.error_body)
        except Exception:
            log.exception("unhandled error on POST %s", route.path)
            response = error_response(InternalError(), route.error_body)
        return response(environ, start_response)


def start_reply(reply: Reply, start_response):
    """The reply's status line and headers as werkzeug's ``Response`` sends them (the reply's own
    headers, then ``Content-Type``, then the ``Content-Length`` of a body known whole: JSON, or a
    list of chunks), and its body: the JSON bytes, or the stream's own chunks (gunicorn closes the
    iterator when the client leaves)."""
    status = f"{reply.status} {HTTP_STATUS_CODES.get(reply.status, 'UNKNOWN').upper()}"
    headers = [(name, str(value)) for name, value in reply.headers.items()]
    if reply.chunks is None:
        body = dump_json(reply.payload).encode("utf-8")
        start_response(status, [*headers, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    headers.append(("Content-Type", reply.content_type))
    if isinstance(reply.chunks, (list, tuple)):  # an answer known whole (an in-band error): its length
        headers.append(("Content-Length", str(sum(len(chunk) for chunk in reply.chunks))))
    start_response(status, headers)
    return reply.chunks
