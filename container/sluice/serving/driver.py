"""The one response driver: every dialect's request goes parse -> driver -> encode.

The driver owns what used to be written twice (once per protocol) and drifted: admission (slots,
429), validation, the response cache, metrics, keep-alives, cancellation and streaming. A
dialect only parses its body and encodes events, errors and final bodies.

Errors follow TGI's rule in every dialect. A body that is not a request (serde's
``Failed to deserialize ...``), a chat template or a tool choice that cannot be used is an HTTP
4xx, even for a stream: TGI refuses those before the stream starts. A request whose values are
refused (``Input validation error``), an overload and a failure during generation are, on a
stream, the last in-band event of an HTTP 200 stream (followed by ``[DONE]`` on OpenAI streams);
without a stream they are the HTTP status of the error. Every refused request, whatever its
dialect, counts in ``/metrics`` (except serde's, which TGI's extractor refuses before counting).
"""

from __future__ import annotations

import logging
import time

from ..errors import ClientClosedError, DeserializeError, IncompleteGenerationError, ServerError, ValidationError
from ..wire.framing import StreamFormat, choose_stream_format
from .admission import GATE
from .exchange import Dialect, Exchange, HttpContext, ParseContext, Reply
from .service import GenerationService
from .stream_consumers import StreamEncoder

log = logging.getLogger("sluice.driver")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CACHE_HEADER = "x-sluice-cache"


class ResponseDriver:
    """Answers one request of any dialect over the generation service."""

    def __init__(self, service: GenerationService, compute_type: str):
        self.service = service
        self.compute_type = compute_type
        self.context = ParseContext(service.limits, service.tokenizer, service.model_name, compute_type)

    def respond(self, dialect: Dialect, body, http: HttpContext) -> Reply:
        fmt = choose_stream_format(http.accept)
        try:
            with GATE:  # admission work: a burst takes turns (``admission``)
                exchange = dialect.parse(body, self.context)
        except ServerError as error:
            return self._refuse(dialect, body, error, fmt)
        if exchange.stream:
            return self._stream(dialect, exchange, fmt, http)
        return self._complete(exchange, http)

    def _refuse(self, dialect: Dialect, body, error: ServerError, fmt: StreamFormat) -> Reply:
        """A request refused while parsing: counted, then in-band if it is a stream's validation
        error, else raised for the HTTP layer's error answer."""
        if not isinstance(error, DeserializeError):
            self.service.reject(error)
        if isinstance(error, ValidationError) and dialect.wants_stream(body):
            return self._error_stream(dialect, error, fmt)
        raise error

    def _complete(self, exchange: Exchange, http: HttpContext) -> Reply:
        """Every prompt of a non-streaming request, run side by side in the batch."""
        started = time.monotonic()
        with self.service.accounted(), self.service.slot():
            valids = [self.service.validate(p.request, exchange.names, p.add_special_tokens, http.sagemaker,
                                            http.session, pin=index == 0)
                      for index, p in enumerate(exchange.prompts)]
            outcomes = self.service.complete_all(valids, http.client_socket)
        # The session goes on with the first answer (a client offered several continues one).
        first = exchange.prompts[0]
        self.service.sessions.record(http.session, valids[0], outcomes[0].runs[0], first.add_special_tokens)
        payload, headers = exchange.encode_final(outcomes, time.monotonic() - started)
        headers[CACHE_HEADER] = "hit" if all(o.cached for o in outcomes) else "miss"
        return Reply(payload=payload, headers=headers)

    def _stream(self, dialect: Dialect, exchange: Exchange, fmt: StreamFormat, http: HttpContext) -> Reply:
        """A streamed answer. Validation happens first (its errors in-band, as TGI's); the slot is
        taken inside the stream, so an overload is in-band too."""
        prompt = exchange.prompts[0]
        try:
            valid = self.service.validate(prompt.request, exchange.names, prompt.add_special_tokens, http.sagemaker,
                                          http.session)
        except ServerError as error:
            self.service.reject(error)
            return self._error_stream(dialect, error, fmt)
        cached = self.service.cached(valid)
        chunks = self._chunks(StreamEncoder(exchange, dialect, fmt), exchange, valid, cached, http)
        return self._stream_reply(chunks, fmt, {CACHE_HEADER: "hit" if cached else "miss"})

    def _chunks(self, encoder: StreamEncoder, exchange: Exchange, valid, cached, http: HttpContext):
        """The answer's bytes: replayed from the cache event by event, or live, written by the
        delivery thread (``service.stream``); errors in-band, ``[DONE]`` last. In a session, the
        whole answer continues the session's transcript."""
        add_special_tokens = exchange.prompts[0].add_special_tokens
        try:
            with self.service.accounted(), self.service.slot():
                if cached is not None:
                    GATE.give()  # the replay writes to the client: not in a turn
                    for event in cached[0]:
                        yield encoder.events([event])
                    self.service.sessions.record(http.session, valid, cached[0], add_special_tokens)
                    yield encoder.tail()
                    return
                yield from self.service.stream(valid, encoder, http.raw_body, http.client_socket,
                                               session=http.session, add_special_tokens=add_special_tokens)
        except ClientClosedError:
            return  # nobody is left to read an error event
        except ServerError as error:
            if not getattr(error, "delivered", False):
                yield encoder.error(error)
        except GeneratorExit:
            raise
        except Exception:
            log.exception("stream failed")
            yield encoder.error(IncompleteGenerationError())

    def _error_stream(self, dialect: Dialect, error: ServerError, fmt: StreamFormat) -> Reply:
        chunk = fmt.encode(dialect.encode_error(error)) + self._trailer(dialect, fmt)
        return self._stream_reply([chunk], fmt, {})

    @staticmethod
    def _trailer(dialect: Dialect, fmt: StreamFormat) -> bytes:
        return fmt.done() if dialect.closes_with_done else b""

    def _stream_reply(self, chunks, fmt: StreamFormat, extra: dict) -> Reply:
        headers = dict(STREAM_HEADERS, **{"x-compute-type": self.compute_type}, **extra)
        return Reply(chunks=chunks, content_type=fmt.content_type, headers=headers)
