"""SageMaker's adapter routes: ``POST /adapters``, ``DELETE /adapters/<name>`` and ``GET /adapters``.

SageMaker (through AWS's ``model-hosting-container-standards`` package, as vLLM serves it) sends
``name`` and ``src`` (plus optional ``preload`` and ``pin``) as a JSON body or as query
parameters, and may name the adapter's alias in ``X-Amzn-SageMaker-Adapter-Alias``; the answers
carry its texts (``Adapter <alias> registered`` / ``unregistered``) in a JSON object. Errors are
the server's JSON error body; the rules (404, 409, 424, ...) live in ``serving.adapters``.
"""

from __future__ import annotations

from flask import Flask, Response, request

from ..errors import BadRequestError, MalformedJSONError
from .json_io import json_response, parse_json
from .request_body import read_request_body
from .sagemaker_headers import adapter_alias

FIELDS = {"name": str, "src": str, "preload": bool, "pin": bool}
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def register_adapter_routes(app: Flask, service, payload_limit: int) -> None:
    """``service()`` is the generation service (a 503 while the model loads)."""

    def register() -> Response:
        fields = registration_fields(read_request_body(request.environ, payload_limit), request.args)
        record = service().adapters.register(fields["name"], fields["src"], alias=adapter_alias(request.headers),
                                             preload=fields.get("preload", True), pin=fields.get("pin", False))
        return json_response({"message": f"Adapter {record.label} registered",
                              "adapter": service().adapters.describe(record)})

    def unregister(name: str) -> Response:
        record = service().adapters.unregister(name)
        return json_response({"message": f"Adapter {record.label} unregistered"})

    def listing() -> Response:
        registry = service().adapters
        return json_response({"adapters": [registry.describe(record) for record in registry.records()]})

    app.add_url_rule("/adapters", "register_adapter", register, methods=["POST"])
    app.add_url_rule("/adapters", "list_adapters", listing, methods=["GET"])
    app.add_url_rule("/adapters/<path:name>", "unregister_adapter", unregister, methods=["DELETE"])


def registration_fields(raw: bytes, query) -> dict:
    """``name``, ``src``, ``preload``, ``pin`` from the JSON body and the query string (either;
    both if they agree). A 400 names what is wrong."""
    fields = {}
    for key, kind in FIELDS.items():
        if key in query:
            fields[key] = query_value(key, query.get(key), kind)
    body = raw.strip()
    if body:
        try:
            payload = parse_json(body)
        except (UnicodeDecodeError, ValueError) as error:
            raise MalformedJSONError(str(error)) from None
        if not isinstance(payload, dict):
            raise BadRequestError("the body must be a JSON object with `name` and `src`")
        for key, kind in FIELDS.items():
            if payload.get(key) is None:
                continue
            value = payload[key]
            if not isinstance(value, kind):
                raise BadRequestError(f"`{key}` must be a {'string' if kind is str else 'boolean'}")
            if key in fields and fields[key] != value:
                raise BadRequestError(f"`{key}` differs between the query string and the body")
            fields[key] = value
    for key in ("name", "src"):
        if not fields.get(key):
            raise BadRequestError(f"missing `{key}`: register with a JSON body or query parameters "
                                  "`name` and `src` (a local PEFT LoRA directory)")
    return fields


def query_value(key: str, value: str, kind: type):
    if kind is str:
        return value
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise BadRequestError(f"`{key}` must be true or false. Given: {value!r}")
