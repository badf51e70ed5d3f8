"""Orchestration between the HTTP layer and the engine: admission, waiting, cancellation.

A request holds one of ``MAX_CONCURRENT_REQUESTS`` slots from admission to its last byte; with
none free it is refused at once with 429 (TGI's ``try_acquire``: no hidden queue here, the
engine's own queue is bounded by the slots). While waiting for tokens the handler keeps checking
that its client is still there, so an abandoned request frees its batch row within a step.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator

from .errors import IncompleteGenerationError, OverloadedError, ServerError
from .schema import GenerateRequest, SchemaLimits
from .sequence import ErrorEvent, TokenEvent
from .validation import ValidRequest, Validator

if TYPE_CHECKING:
    from .engine import Engine

POLL_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0


class GenerationService:
    def __init__(self, engine: Engine, validator: Validator, schema_limits: SchemaLimits,
                 max_concurrent_requests: int, request_timeout: float):
        self.engine = engine
        self.validator = validator
        self.schema_limits = schema_limits
        self.tokenizer = validator.tokenizer
        self.request_timeout = request_timeout
        self.max_concurrent_requests = max_concurrent_requests
        self._slots = threading.BoundedSemaphore(max_concurrent_requests)
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextlib.contextmanager
    def slot(self):
        """Hold one concurrency slot, or raise 429 at once."""
        if not self._slots.acquire(blocking=False):
            raise OverloadedError()
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
            self._slots.release()

    def validate(self, request: GenerateRequest) -> ValidRequest:
        return self.validator.validate(request)

    def events(self, valid: ValidRequest, client_gone: Callable[[], bool], seed: int | None = None,
               heartbeat: bool = False) -> Iterator[TokenEvent | None]:
        """Yield a sequence's token events until its last; cancel it if the consumer goes away.

        With ``heartbeat``, ``None`` is yielded after 15 s without an event (TGI's SSE keep-alive
        interval). ``client_gone`` is polled while waiting; a generator close (the client hung up
        during a write) cancels too.
        """
        sequence = self.engine.submit(valid, seed=seed)
        deadline = time.monotonic() + self.request_timeout
        last_activity = time.monotonic()
        finished = False
        try:
            while True:
                try:
                    event = sequence.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if client_gone():
                        return
                    now = time.monotonic()
                    if now > deadline:
                        raise IncompleteGenerationError()
                    if heartbeat and now - last_activity > KEEPALIVE_SECONDS:
                        last_activity = now
                        yield None
                    continue
                last_activity = time.monotonic()
                if isinstance(event, ErrorEvent):
                    finished = True
                    error = event.error
                    raise error if isinstance(error, ServerError) else IncompleteGenerationError()
                yield event
                if event.finish is not None:
                    finished = True
                    return
        finally:
            if not finished:
                sequence.cancel()
                self.engine.wake()

    def collect(self, valid: ValidRequest, client_gone: Callable[[], bool], seed: int | None = None) -> list[TokenEvent]:
        events = list(self.events(valid, client_gone, seed=seed))
        if not events or events[-1].finish is None:
            raise IncompleteGenerationError()
        return events

    def collect_best_of(self, valid: ValidRequest, client_gone: Callable[[], bool]) -> list[list[TokenEvent]]:
        """Run ``best_of`` sequences side by side; the most likely one comes first."""
        n = valid.request.best_of
        if n == 1:
            return [self.collect(valid, client_gone)]
        results: list = [None] * n
        errors: list = []

        def run(i: int) -> None:
            try:
                results[i] = self.collect(valid, client_gone)
            except Exception as error:  # surfaced below, in the request thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return sorted(results, key=lambda run: -sum(e.token.logprob or 0.0 for e in run))
