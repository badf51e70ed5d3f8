"""TGI's generate routes: ``/generate`` (a bare object back), ``/generate_stream`` (SSE of
``StreamResponse``) and ``/`` (the compat body: a list back, streaming if the body says so)."""

from __future__ import annotations

from ..route import Route
from .dialect import TgiDialect
from .errors import error_body

GENERATE = TgiDialect(stream=False, compat=False)
GENERATE_STREAM = TgiDialect(stream=True, compat=False)
COMPAT = TgiDialect(stream=None, compat=True)

ROUTES = (
    Route.to("/generate", "generate", GENERATE, error_body),
    Route.to("/generate_stream", "generate_stream", GENERATE_STREAM, error_body),
    Route.to("/", "root", COMPAT, error_body),  # GET / is the health check, registered by the app
)
