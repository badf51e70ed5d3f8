"""The Flask application: thin routes over the generation service.

``create_app(host, config)`` instead of import-time globals: the same factory serves gunicorn
(via ``container/inference.py``) and tests. Routes only translate HTTP to service calls and back.
"""

from __future__ import annotations

from flask import Flask, Response, request

from . import generate_routes
from .config import Config
from .errors import NotReadyError
from .http_io import error_response, read_json_body, register_error_handlers
from .model_host import ModelHost


def create_app(host: ModelHost, config: Config) -> Flask:
    app = Flask("sluice")
    app.config["MAX_CONTENT_LENGTH"] = config.payload_limit
    register_error_handlers(app, config.payload_limit)

    def service():
        if host.service is None:
            raise NotReadyError("Model is not ready: loading" if host.error is None else "Model failed to load")
        return host.service

    def body():
        return read_json_body(config.payload_limit)

    def health():
        """SageMaker's health check: from cached state only, never a forward pass (2 s budget)."""
        if host.service is None:
            return error_response(NotReadyError(
                "Model is loading" if host.error is None else f"Model failed to load: {host.error}"))
        return Response(status=200)

    app.add_url_rule("/ping", "ping", health, methods=["GET"])
    app.add_url_rule("/health", "health", health, methods=["GET"])

    @app.route("/", methods=["GET", "POST"])
    def root():
        if request.method == "GET":
            return health()
        return generate_routes.generate(service(), body(), compat=True, stream=None,
                                        compute_type=config.compute_type)

    @app.post("/invocations")
    def invocations():
        return generate_routes.generate(service(), body(), compat=True, stream=None,
                                        compute_type=config.compute_type)

    @app.post("/generate")
    def generate():
        return generate_routes.generate(service(), body(), compat=False, stream=False,
                                        compute_type=config.compute_type)

    @app.post("/generate_stream")
    def generate_stream():
        return generate_routes.generate(service(), body(), compat=False, stream=True,
                                        compute_type=config.compute_type)

    return app
