"""TGI's generate family: ``/generate``, ``/generate_stream``, and the compat body of ``/`` and
``/invocations`` (a list back, streaming decided by the body's ``"stream"``)."""

from __future__ import annotations

import logging
import time

from flask import Response, request

from .errors import IncompleteGenerationError, ServerError, ValidationError
from .framing import SSE_KEEPALIVE, StreamFormat, choose_stream_format
from .http_io import client_gone_probe, json_response
from .responses import generate_response, stream_event, timing_headers
from .schema import parse_generate_request
from .service import GenerationService

log = logging.getLogger("sluice.generate")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def generate(service: GenerationService, body, *, compat: bool, stream: bool | None,
             compute_type: str) -> Response:
    """Answer one generate request; ``compat`` wraps the result in a list (``/``, ``/invocations``)."""
    wants_stream = stream if stream is not None else isinstance(body, dict) and body.get("stream") is True
    fmt = choose_stream_format(request.headers.get("Accept"))
    client_gone = client_gone_probe(request.environ)
    try:
        req = parse_generate_request(body, service.schema_limits, stream=stream,
                                     return_full_text_default=compat)
    except ValidationError as error:
        if wants_stream:  # TGI validates inside the stream: HTTP 200 and an error event
            return stream_response([fmt.encode(error.body())], fmt, compute_type)
        raise
    if req.stream:
        return stream_response(_stream_events(service, req, fmt, client_gone), fmt, compute_type)
    started = time.monotonic()
    with service.slot():
        valid = service.validate(req)
        runs = service.collect_best_of(valid, client_gone)
    body_out = generate_response(runs, req.inputs, req.return_full_text, req.details)
    headers = timing_headers(runs, compute_type, time.monotonic() - started)
    return json_response([body_out] if compat else body_out, headers=headers)


def stream_response(chunks, fmt: StreamFormat, compute_type: str) -> Response:
    headers = dict(STREAM_HEADERS, **{"x-compute-type": compute_type})
    return Response(chunks, status=200, content_type=fmt.content_type, headers=headers)


def _stream_events(service: GenerationService, req, fmt: StreamFormat, client_gone):
    """Each event is encoded and yielded alone, so gunicorn writes it as its own chunk."""
    try:
        with service.slot():
            valid = service.validate(req)
            for event in service.events(valid, client_gone, heartbeat=fmt.is_sse):
                if event is None:
                    yield SSE_KEEPALIVE
                    continue
                yield fmt.encode(stream_event(event, req.inputs, req.return_full_text, req.details))
    except ServerError as error:
        yield fmt.encode(error.body())
    except GeneratorExit:
        raise
    except Exception:
        log.exception("stream failed")
        yield fmt.encode(IncompleteGenerationError().body())
