"""The Flask application: thin routes, each parse -> driver -> encode.

``create_app(host, config)`` instead of import-time globals: the same factory serves gunicorn
(via ``container/inference.py``) and tests. A route only picks the dialect; the response driver
(``serving.driver``) answers every dialect the same way, and ``reply_response`` writes its reply.
"""

from __future__ import annotations

from flask import Flask, Response, request

from .. import __version__
from ..config import Config
from ..dialects.openai_chat import ChatDialect
from ..dialects.openai_completions import CompletionsDialect
from ..dialects.tgi import TgiDialect
from ..errors import DeserializeError, NotReadyError
from ..model.host import ModelHost
from ..serving.driver import ResponseDriver
from ..serving.exchange import HttpContext, Reply
from . import info_routes
from .cache_opt_out import wants_cache
from .guards import register_guards
from .json_io import client_gone_probe, json_response, read_json_body, register_error_handlers

# The client-visible text after a failed load; the cause (paths, hub errors) is in the log only.
LOAD_FAILED = "Model failed to load; see the server log"


class Routes:
    """The handlers, over the model host (whose service appears once the model is loaded)."""

    def __init__(self, host: ModelHost, config: Config):
        self.host, self.config = host, config
        fingerprint = f"{__version__}-native"
        self.chat, self.completions = ChatDialect(fingerprint), CompletionsDialect(fingerprint)
        self.generate = TgiDialect(stream=False, compat=False)
        self.generate_stream = TgiDialect(stream=True, compat=False)
        self.compat = TgiDialect(stream=None, compat=True)

    def service(self):
        if self.host.service is None:
            raise NotReadyError("Model is loading" if self.host.error is None else LOAD_FAILED)
        return self.host.service

    def body(self):
        return read_json_body(self.config.payload_limit)

    def answer(self, dialect, payload=None) -> Response:
        """The one path of every inference route: the driver answers, the reply is written."""
        payload = self.body() if payload is None else payload
        driver = ResponseDriver(self.service(), self.host.compute_type)
        return reply_response(driver.respond(dialect, payload, http_context()))

    def health(self) -> Response:
        """SageMaker's health check: from cached state only, never a forward pass (2 s budget)."""
        if not self.service().healthy():
            raise NotReadyError("The generation engine has stopped")
        return Response(status=200, content_type="text/plain")  # empty, and not HTML

    def root(self) -> Response:
        return self.health() if request.method == "GET" else self.answer(self.compat)

    def invocations(self) -> Response:
        """SageMaker's one route, dispatched on the body's shape as TGI >= 2.4 does."""
        payload = self.body()
        return self.answer(invocations_dialect(payload, self.compat, self.chat, self.completions), payload)


def create_app(host: ModelHost, config: Config) -> Flask:
    app = Flask("sluice")
    app.url_map.merge_slashes = False  # `/v1//chat/completions` is a 404, as in axum, not a redirect
    register_error_handlers(app, config.payload_limit)
    register_guards(app, config.api_key)
    routes = Routes(host, config)
    get, post = ["GET"], ["POST"]
    for path, name, view, methods in (
            ("/ping", "ping", routes.health, get), ("/health", "health", routes.health, get),
            ("/info", "info", lambda: info_routes.info(routes.service(), config), get),
            ("/v1/models", "models", lambda: info_routes.models(config), get),
            ("/metrics", "metrics", lambda: info_routes.metrics(host.service), get),
            ("/tokenize", "tokenize", lambda: info_routes.tokenize(routes.service(), routes.body()), post),
            ("/", "root", routes.root, ["GET", "POST"]), ("/invocations", "invocations", routes.invocations, post),
            ("/generate", "generate", lambda: routes.answer(routes.generate), post),
            ("/generate_stream", "generate_stream", lambda: routes.answer(routes.generate_stream), post),
            ("/v1/chat/completions", "chat_completions", lambda: routes.answer(routes.chat), post),
            ("/v1/completions", "completions", lambda: routes.answer(routes.completions), post)):
        app.add_url_rule(path, name, view, methods=methods)
    return app


def invocations_dialect(payload, compat, chat, completions):
    """TGI's untagged ``SagemakerRequest``: a string ``inputs`` wins, then ``messages``, then
    ``prompt``; a non-string ``inputs`` gets the generate route's exact error."""
    if isinstance(payload, dict) and isinstance(payload.get("inputs"), str):
        return compat
    if isinstance(payload, dict) and "messages" in payload:
        return chat
    if isinstance(payload, dict) and "prompt" in payload:
        return completions
    if isinstance(payload, dict) and "inputs" in payload:
        return compat
    raise DeserializeError("data did not match any variant of untagged enum SagemakerRequest "
                           "(expected `inputs`, `messages` or `prompt`)")


def http_context() -> HttpContext:
    """What the driver reads of the HTTP request: the stream format, the cache opt-out and a
    probe telling whether the client hung up."""
    return HttpContext(accept=request.headers.get("Accept"), use_cache=wants_cache(request.headers),
                       client_gone=client_gone_probe(request.environ))


def reply_response(reply: Reply) -> Response:
    """The driver's reply as a Flask response: JSON, or a stream written chunk by chunk."""
    if reply.chunks is None:
        return json_response(reply.payload, status=reply.status, headers=reply.headers)
    return Response(reply.chunks, status=reply.status, content_type=reply.content_type, headers=reply.headers)
