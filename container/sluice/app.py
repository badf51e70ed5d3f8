"""The Flask application: thin routes over the generation service.

``create_app(host, config)`` instead of import-time globals: the same factory serves gunicorn
(via ``container/inference.py``) and tests. Routes only translate HTTP to service calls and back.
"""

from __future__ import annotations

import hmac

from flask import Flask, Response, request
from werkzeug.routing import RequestRedirect

from . import __version__, generate_routes, info_routes, openai_routes
from .config import Config
from .errors import DeserializeError, NotFoundError, NotReadyError, UnauthorizedError
from .http_io import error_response, read_json_body, register_error_handlers
from .model_host import ModelHost

INFERENCE_ROUTES = {"/", "/invocations", "/generate", "/generate_stream", "/v1/chat/completions",
                    "/v1/completions", "/tokenize"}
# The client-visible text after a failed load; the cause (paths, hub errors) is in the log only.
LOAD_FAILED = "Model failed to load; see the server log"


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


def create_app(host: ModelHost, config: Config) -> Flask:
    app = Flask("sluice")
    app.url_map.merge_slashes = False  # `/v1//chat/completions` is a 404, as in axum, not a redirect
    register_error_handlers(app, config.payload_limit)
    fingerprint = f"{__version__}-native"

    def service():
        if host.service is None:
            raise NotReadyError("Model is loading" if host.error is None else LOAD_FAILED)
        return host.service

    def body():
        return read_json_body(config.payload_limit)

    @app.before_request
    def refuse_redirects():
        """Flask answers a routing redirect with werkzeug's HTML page, past every error handler;
        a path that only matches after a redirect is not a route here. gunicorn reads a target
        starting with ``//`` as ``//host/path`` (``//invocations`` would arrive as ``/``): not a
        route either."""
        raw_target = request.environ.get("RAW_URI", "")
        if isinstance(request.routing_exception, RequestRedirect) or raw_target.startswith("//"):
            raise NotFoundError(f"Route {request.method} {raw_target or request.path} not found")

    api_key = key_bytes(config.api_key) if config.api_key else None

    @app.before_request
    def require_api_key():
        """With API_KEY set, inference routes need the bearer token (TGI); health stays open."""
        if api_key and request.method == "POST" and request.path in INFERENCE_ROUTES:
            token = bearer_token(request.headers.get("Authorization", ""))
            if token is None or not hmac.compare_digest(token, api_key):
                return error_response(UnauthorizedError())
        return None

    def health():
        """SageMaker's health check: from cached state only, never a forward pass (2 s budget)."""
        if not service().engine.alive:
            raise NotReadyError("The generation engine has stopped")
        return Response(status=200, content_type="text/plain")  # empty, and not HTML

    app.add_url_rule("/ping", "ping", health, methods=["GET"])
    app.add_url_rule("/health", "health", health, methods=["GET"])
    app.add_url_rule("/info", "info", lambda: info_routes.info(service(), config), methods=["GET"])
    app.add_url_rule("/v1/models", "models", lambda: info_routes.models(config), methods=["GET"])
    app.add_url_rule("/metrics", "metrics", lambda: info_routes.metrics(host.service), methods=["GET"])
    app.add_url_rule("/tokenize", "tokenize", lambda: info_routes.tokenize(service(), body()), methods=["POST"])

    def compat(payload):
        return generate_routes.generate(service(), payload, compat=True, stream=None, compute_type=host.compute_type)

    @app.route("/", methods=["GET", "POST"])
    def root():
        return health() if request.method == "GET" else compat(body())

    @app.post("/invocations")
    def invocations():
        """SageMaker's one route, dispatched on the body's shape as TGI >= 2.4 does."""
        payload = body()
        if isinstance(payload, dict) and isinstance(payload.get("inputs"), str):
            return compat(payload)
        if isinstance(payload, dict) and "messages" in payload:
            return openai_routes.chat(service(), payload, config.model_id, fingerprint, host.compute_type)
        if isinstance(payload, dict) and "prompt" in payload:
            return openai_routes.completions(service(), payload, config.model_id, fingerprint, host.compute_type)
        if isinstance(payload, dict) and "inputs" in payload:
            return compat(payload)  # a non-string `inputs` gets the generate route's exact error
        raise DeserializeError("data did not match any variant of untagged enum SagemakerRequest "
                               "(expected `inputs`, `messages` or `prompt`)")

    @app.post("/generate")
    def generate():
        return generate_routes.generate(service(), body(), compat=False, stream=False, compute_type=host.compute_type)

    @app.post("/generate_stream")
    def generate_stream():
        return generate_routes.generate(service(), body(), compat=False, stream=True, compute_type=host.compute_type)

    @app.post("/v1/chat/completions")
    def chat_completions():
        return openai_routes.chat(service(), body(), config.model_id, fingerprint, host.compute_type)

    @app.post("/v1/completions")
    def completions():
        return openai_routes.completions(service(), body(), config.model_id, fingerprint, host.compute_type)

    return app
