"""The Flask application: thin routes, each parse -> driver -> encode.

``create_app(host, config)`` instead of import-time globals: the same factory serves gunicorn
(via ``container/inference.py``) and tests. The generation routes come from the protocols' tables
(``protocols.registry``): a route picks the dialect, the response driver (``serving.driver``)
answers every dialect the same way, ``reply_response`` writes its reply, and an HTTP error on a
route leaves in that route's protocol's error body. A generation route's POST reaches the same
handler through ``generation_wsgi`` in front of Flask's dispatch (Flask's own routing still answers
its other methods, 404s and 405s).
"""

from __future__ import annotations

from flask import Flask, Response, request

from ..config import Config
from ..errors import NotReadyError, ServerError
from ..model.host import ModelHost
from ..protocols import invocations
from ..protocols.registry import ROUTES, invoked_route
from ..protocols.route import Route
from ..request import SageMakerHeaders
from ..serving.driver import ResponseDriver
from ..serving.exchange import HttpContext, Reply
from ..serving.session_store import Session
from ..serving.sessions import SessionAnswer, session_request_type
from . import info_routes
from .adapter_routes import register_adapter_routes
from .generation_wsgi import GenerationRoutes
from .guards import api_key_check, register_guards
from .json_io import json_response, read_json_body, register_error_handlers
from .raw_body import RAW_BODY
from .sagemaker_headers import read_sagemaker_headers

# The client-visible text after a failed load; the cause (paths, hub errors) is in the log only.
LOAD_FAILED = "Model failed to load; see the server log"
# /ping's answer, and every generation request's, once the engine's thread has stopped.
ENGINE_STOPPED = "The generation engine has stopped"


class Routes:
    """The handlers, over the model host (whose service appears once the model is loaded)."""

    def __init__(self, host: ModelHost, config: Config):
        self.host, self.config = host, config

    def service(self):
        if self.host.service is None:
            raise NotReadyError("Model is loading" if self.host.error is None else LOAD_FAILED)
        return self.host.service

    def serving_service(self):
        """The service, for a request that needs the engine: a stopped engine would take it and
        never answer, so it gets /ping's 503 at once (the error table's `healthcheck`)."""
        service = self.service()
        if not service.healthy():
            raise NotReadyError(ENGINE_STOPPED)
        return service

    def body(self, incoming=request):
        return read_json_body(self.config.payload_limit, incoming)

    def answer(self, route: Route, incoming=request) -> Response:
        """The one path of every generation route, as a Flask response (``reply``)."""
        answer = self.reply(route, incoming)
        return reply_response(answer) if isinstance(answer, Reply) else answer

    def reply(self, route: Route, incoming=request) -> Reply | Response:
        """The route picks the dialect, the driver answers. On ``/invocations`` first SageMaker's
        own requests: a session's opening or closing (a ready response), and ``route=`` choosing
        another route for the body. ``incoming``: Flask's request, or ``generation_wsgi``'s reading
        of the same environ (which writes the reply itself)."""
        payload = self.body(incoming)
        service = self.serving_service()
        sagemaker = read_sagemaker_headers(incoming.headers)
        if route is invocations.ROUTE:
            kind = session_request_type(payload)
            if kind is not None:
                return session_response(service.sessions.answer(kind, sagemaker.session_id))
            route = invoked_route(sagemaker)
        session = service.sessions.resolve(sagemaker.session_id)
        dialect = route.choose(payload)
        driver = ResponseDriver(service, self.host.compute_type)
        return driver.respond(dialect, payload, http_context(incoming, sagemaker, session))

    def health(self) -> Response:
        """SageMaker's health check: from cached state only, never a forward pass (2 s budget)."""
        self.serving_service()
        return Response(status=200, content_type="text/plain")  # empty, and not HTML


# The server's own routes (health, description, tokenizer, metrics): no protocol's generation route.
HEALTH_PATHS = (("/ping", "ping"), ("/health", "health"), ("/", "root_health"))  # GET / is TGI's health


def create_app(host: ModelHost, config: Config) -> Flask:
    app = Flask("sluice")
    app.url_map.merge_slashes = False  # `/v1//chat/completions` is a 404, as in axum, not a redirect
    error_bodies = {route.name: route.error_body for route in ROUTES}
    register_error_handlers(app, config.payload_limit,
                            lambda error: error_bodies.get(request.endpoint, ServerError.body)(error))
    register_guards(app, config.api_key, protected={route.path for route in ROUTES} | {"/tokenize"},
                    admin=("/adapters",))
    routes = Routes(host, config)
    for path, name in HEALTH_PATHS:
        app.add_url_rule(path, name, routes.health, methods=["GET"])
    for path, name, view, methods in (
            ("/info", "info", lambda: info_routes.info(routes.service(), config), ["GET"]),
            ("/v1/models", "models", lambda: info_routes.models(config, host.service), ["GET"]),
            ("/metrics", "metrics", lambda: info_routes.metrics(host.service), ["GET"]),
            ("/tokenize", "tokenize", lambda: info_routes.tokenize(routes.service(), routes.body()), ["POST"])):
        app.add_url_rule(path, name, view, methods=methods)
    for route in ROUTES:
        app.add_url_rule(route.path, route.name, lambda route=route: routes.answer(route), methods=["POST"])
    register_adapter_routes(app, routes.service, config.payload_limit)
    app.wsgi_app = GenerationRoutes(app.wsgi_app, routes.reply, api_key_check(config.api_key), config.payload_limit)
    return app


def http_context(incoming, sagemaker: SageMakerHeaders, session: Session | None) -> HttpContext:
    """What the driver reads of the HTTP request: the stream format, SageMaker's headers, the
    session it runs in, the client's socket (watched for its closing) and, under gunicorn, the
    streamed body's writer."""
    environ = incoming.environ
    return HttpContext(accept=incoming.headers.get("Accept"), sagemaker=sagemaker, session=session,
                       client_socket=environ.get("gunicorn.socket"), raw_body=environ.get(RAW_BODY))


def session_response(answer: SessionAnswer) -> Response:
    """A session opened or closed: SageMaker reads the headers; the text is the standards package's."""
    return Response(answer.text, status=200, content_type="text/plain; charset=utf-8", headers=answer.headers)


def reply_response(reply: Reply) -> Response:
    """The driver's reply as a Flask response: JSON, or a stream written chunk by chunk."""
    if reply.chunks is None:
        return json_response(reply.payload, status=reply.status, headers=reply.headers)
    return Response(reply.chunks, status=reply.status, content_type=reply.content_type, headers=reply.headers)
