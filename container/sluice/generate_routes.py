"""TGI's generate family: ``/generate``, ``/generate_stream``, and the compat body of ``/`` and
``/invocations`` (a list back, streaming decided by the body's ``"stream"``)."""

from __future__ import annotations

import logging
import time

from flask import Response, request

from .errors import ClientClosedError, IncompleteGenerationError, ServerError, ValidationError
from .framing import SSE_KEEPALIVE, StreamFormat, choose_stream_format
from .http_io import client_gone_probe, json_response
from .response_cache import wants_cache
from .responses import generate_response, stream_event, timing_headers
from .schema import parse_generate_request
from .service import GenerationService

log = logging.getLogger("sluice.generate")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CACHE_HEADER = "x-sluice-cache"


def generate(service: GenerationService, body, *, compat: bool, stream: bool | None,
             compute_type: str) -> Response:
    """Answer one generate request; ``compat`` wraps the result in a list (``/``, ``/invocations``)."""
    wants_stream = stream if stream is not None else isinstance(body, dict) and body.get("stream") is True
    fmt = choose_stream_format(request.headers.get("Accept"))
    try:
        req = parse_generate_request(body, service.schema_limits, stream=stream,
                                     return_full_text_default=compat)
    except ValidationError as error:
        if wants_stream:  # TGI validates inside the stream: HTTP 200 and an error event
            return error_stream(service, error, fmt, compute_type)
        count_rejected(service, error)
        raise
    if req.stream:
        return stream_generation(service, req, fmt, compute_type,
                                 lambda event: [stream_event(event, req.inputs, req.return_full_text, req.details)])
    started = time.monotonic()
    runs, hit = run_to_completion(service, req)
    body_out = generate_response(runs, req.inputs, req.return_full_text, req.details)
    headers = timing_headers(runs, compute_type, time.monotonic() - started)
    headers[CACHE_HEADER] = "hit" if hit else "miss"
    return json_response([body_out] if compat else body_out, headers=headers)


def run_to_completion(service: GenerationService, req, input_ids=None):
    """Validate, admit and run a non-streaming request; errors propagate as ServerErrors."""
    with service.accounted(), service.slot():
        valid = service.validate(req, input_ids)
        return service.complete(valid, client_gone_probe(request.environ), wants_cache(request.headers))


def stream_response(chunks, fmt: StreamFormat, compute_type: str, extra: dict | None = None) -> Response:
    headers = dict(STREAM_HEADERS, **{"x-compute-type": compute_type}, **(extra or {}))
    return Response(chunks, status=200, content_type=fmt.content_type, headers=headers)


def count_rejected(service: GenerationService, error: ServerError) -> None:
    """A request refused before it reached ``service.accounted`` still counts, as in TGI."""
    service.metrics.count("tgi_request_count")
    service.metrics.count("tgi_request_failure", {"err": error.error_type})


def error_stream(service: GenerationService, error: ServerError, fmt: StreamFormat, compute_type: str,
                 encode_error=None, trailer: bytes = b"") -> Response:
    count_rejected(service, error)
    payload = encode_error(error) if encode_error else error.body()
    return stream_response([fmt.encode(payload) + trailer], fmt, compute_type)


def stream_generation(service: GenerationService, req, fmt: StreamFormat, compute_type: str, encode_event,
                      input_ids=None, encode_error=None, tail=lambda: [], trailer: bytes = b"") -> Response:
    """A streamed generation: each event is encoded and yielded alone, so gunicorn writes it as
    its own chunk. Validation happens first (errors in-band, as TGI); the slot is taken inside
    the stream, so overload is in-band too. ``tail()`` yields closing payloads (chat usage)."""
    try:
        valid = service.validate(req, input_ids)
    except ServerError as error:
        return error_stream(service, error, fmt, compute_type, encode_error, trailer)
    cached = service.cached(valid, wants_cache(request.headers))
    client_gone = client_gone_probe(request.environ)

    def chunks():
        try:
            with service.accounted(), service.slot():
                for event in service.stream(valid, client_gone, cached, heartbeat=fmt.is_sse):
                    if event is None:
                        yield SSE_KEEPALIVE
                        continue
                    for payload in encode_event(event):
                        yield fmt.encode(payload)
                for payload in tail():
                    yield fmt.encode(payload)
        except ClientClosedError:
            return  # nobody is left to read an error event
        except ServerError as error:
            yield fmt.encode(encode_error(error) if encode_error else error.body())
        except GeneratorExit:
            raise
        except Exception:
            log.exception("stream failed")
            error = IncompleteGenerationError()
            yield fmt.encode(encode_error(error) if encode_error else error.body())
        if trailer:
            yield trailer

    return stream_response(chunks(), fmt, compute_type, {CACHE_HEADER: "hit" if cached else "miss"})
