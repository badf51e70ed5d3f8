"""The generation routes' POSTs, answered in front of Flask's request machinery.

Nearly every request a server sees is a POST to one of a few exact paths (``protocols.registry``).
For each, Flask would push a request and an app context, match the URL map, run the guards
(``guards``), dispatch, and pop it all again: about a tenth of the worker's CPU for a one-token
answer, paid in the burst of requests that opens a busy minute, when it delays every first token.
``GenerationRoutes`` is the app's ``wsgi_app`` middleware: an exact POST to a generation route
runs the same handler (``Routes.answer``) with the request read straight from the WSGI environ,
its API key checked as the guard checks it, and any error written in the route's protocol's body
as Flask's error handlers write it; everything else (other paths and methods, a trailing slash,
``//`` targets) goes to Flask unchanged.
"""

from __future__ import annotations

import logging
from typing import Callable

from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import HTTPException

from ..errors import InternalError, ServerError
from ..protocols.registry import ROUTES
from ..protocols.route import Route
from .json_io import error_response, http_error_response

log = logging.getLogger("sluice.http")


class EnvironRequest:
    """What ``Routes.answer`` reads of a request, as Flask's ``request`` gives it."""

    __slots__ = ("environ", "headers")

    def __init__(self, environ: dict):
        self.environ = environ
        self.headers = EnvironHeaders(environ)

    @property
    def content_type(self) -> str | None:
        return self.environ.get("CONTENT_TYPE")


class GenerationRoutes:
    def __init__(self, flask_wsgi, answer: Callable[[Route, EnvironRequest], object],
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
        except ServerError as error:
            response = error_response(error, route.error_body)
        except HTTPException as error:
            response = http_error_response(error, "POST", route.path, self._payload_limit, route.error_body)
        except Exception:
            log.exception("unhandled error on POST %s", route.path)
            response = error_response(InternalError(), route.error_body)
        return response(environ, start_response)
