"""Orchestration between the HTTP layer and the engine: admission, caching, waiting, metrics.

A request holds one of ``MAX_CONCURRENT_REQUESTS`` slots from admission to its last byte; with
none free it is refused at once with 429 (TGI's ``try_acquire``: no hidden queue here, the
engine's own queue is bounded by the slots). The handler checks that its client is still there
on every token and while waiting for one, so an abandoned request frees its batch row within a
step, streaming or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator

from ..engines.base import GenerationEngine
from ..errors import (
    ClientClosedError,
    GenerationError,
    IncompleteGenerationError,
    OverloadedError,
    ServerError,
    ShuttingDownError,
    ValidationError,
)
from ..request import NO_HEADERS, TGI_NAMES, FieldNames, GenerateRequest, RequestLimits, SageMakerHeaders, ValidRequest
from ..text.events import ErrorEvent, TokenEvent
from .adapters import AdapterRegistry
from .exchange import Outcome, Run
from .metrics import Metrics
from .response_cache import ResponseCache, cache_key
from .session_store import Session
from .sessions import Sessions
from .shutdown import CLOCK as SHUTDOWN
from .validation import Validator

if TYPE_CHECKING:
    from .grammar import GrammarCompiler

POLL_SECONDS = 0.05


class GenerationService:
    def __init__(self, engine: GenerationEngine, validator: Validator, limits: RequestLimits,
                 max_concurrent_requests: int, request_timeout: float, cache: ResponseCache | None = None,
                 metrics: Metrics | None = None, keepalive_seconds: float = 15.0,
                 grammars: "GrammarCompiler | None" = None, model_name: str = "",
                 adapters: AdapterRegistry | None = None, sessions: Sessions | None = None):
        self.engine = engine
        self.sessions = sessions or Sessions(None)  # stateful sessions (off unless configured)
        self.validator = validator
        self.limits = limits
        self.model_name = model_name  # the served model name OpenAI answers carry
        self.tokenizer = validator.tokenizer
        self.request_timeout = request_timeout
        self.keepalive_seconds = keepalive_seconds
        self.grammars = grammars  # None: this tokenizer cannot be constrained (not a fast one)
        self.max_concurrent_requests = max_concurrent_requests
        self.cache = cache or ResponseCache(0)
        self.adapters = adapters or AdapterRegistry(engine, (model_name,))  # the LoRA adapters by name
        self.metrics = metrics or Metrics()
        self.metrics.bind_gauges(lambda: engine.stats, lambda: self._in_flight, self.cache, self.sessions.count)
        self._slots = threading.BoundedSemaphore(max_concurrent_requests)
        self._in_flight = 0
        self._lock = threading.Lock()

    # --- admission --------------------------------------------------------------------------

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
            self._slots.release()
            with self._lock:  # after the release: an in-flight gauge of 0 means every slot is free
                self._in_flight -= 1

    @contextlib.contextmanager
    def accounted(self):
        """Count one request in TGI's request counters, by outcome."""
        self.metrics.count_request()
        started = time.monotonic()
        try:
            yield
        except (GeneratorExit, ClientClosedError):
            self.metrics.count_cancelled()
            raise
        except ServerError as error:
            self.metrics.count_failure(error.error_type)
            raise
        except Exception:
            self.metrics.count_failure("internal")
            raise
        self.metrics.count_success(time.monotonic() - started)

    def healthy(self) -> bool:
        """From cached state only, never a forward pass (SageMaker's 2 s ping budget)."""
        return self.engine.healthy()

    def describe(self) -> dict:
        return self.engine.describe()

    def close(self, timeout: float) -> bool:
        """The worker is exiting: stop the engine (requests have had their in-band end)."""
        return self.engine.close(timeout)

    def reject(self, error: ServerError) -> None:
        """A request refused before it reached ``accounted`` still counts, as in TGI."""
        self.metrics.count_request()
        self.metrics.count_failure(error.error_type)

    def validate(self, request: GenerateRequest, names: FieldNames = TGI_NAMES, add_special_tokens: bool = True,
                 sagemaker: SageMakerHeaders = NO_HEADERS, session: Session | None = None,
                 pin: bool = True) -> ValidRequest:
        """Token checks, then the grammar's compile: here, in the request thread (bounded, cached),
        so the engine only ever sees ready matchers. The valid request carries SageMaker's headers
        and the adapter they and the body select on to the cache and the engine, and, in a session,
        continues the session's transcript; ``pin``: the engine keeps this one's conversation for
        the session (one choice of several)."""
        adapter = self.adapters.resolve(sagemaker, request.adapter)
        valid = self.validator.validate(request, names, add_special_tokens,
                                        session.transcript if session is not None else None)
        valid = dataclasses.replace(valid, sagemaker=sagemaker, adapter=adapter,
                                    session=Sessions.pin(session) if pin else None)
        if request.grammar is None:
            return valid
        if self.grammars is None:
            raise ValidationError("grammar is not supported")
        return dataclasses.replace(valid, grammar=self.grammars.compile(request.grammar))

    # --- cache --------------------------------------------------------------------------------

    def cached(self, valid: ValidRequest) -> list[Run] | None:
        """The stored answer to this request, unless its client opted out of the cache."""
        if not valid.sagemaker.use_cache:
            return None
        runs = self.cache.get(self._key(valid))
        if runs is not None:
            self.metrics.count_cache_hit()
        return runs

    def _store(self, valid: ValidRequest, runs: list[Run]) -> None:
        self.cache.put(self._key(valid), runs)

    @staticmethod
    def _key(valid: ValidRequest) -> tuple:
        """What decides the tokens: the request, what its SageMaker headers select and its adapter
        (one registration's: a name registered again never replays the old weights' answers)."""
        adapter = valid.adapter.cache_scope() if valid.adapter is not None else ()
        return cache_key(valid.request, valid.input_ids, valid.max_new_tokens) + valid.sagemaker.cache_scope() + adapter

    # --- generation -----------------------------------------------------------------------------

    def complete_all(self, valids: list[ValidRequest], client_gone: Callable[[], bool]) -> list[Outcome]:
        """Every prompt of a non-streaming request; several are submitted together, so the engine
        batches them instead of running one after another."""
        if len(valids) == 1:
            return [self.complete(valids[0], client_gone)]
        return run_side_by_side([lambda v=v: self.complete(v, client_gone) for v in valids])

    def complete(self, valid: ValidRequest, client_gone: Callable[[], bool]) -> Outcome:
        """All sequences of one prompt (best first), and whether they came from cache."""
        runs = self.cached(valid)
        if runs is not None:
            return Outcome(runs, True)
        runs = self._collect_best_of(valid, client_gone)
        self._store(valid, runs)
        return Outcome(runs, False)

    def stream(self, valid: ValidRequest, client_gone: Callable[[], bool], cached: list[Run] | None,
               heartbeat: bool = False) -> Iterator[TokenEvent | None]:
        """Token events of a streaming request: replayed from cache, or live from the engine."""
        if cached is not None:
            yield from cached[0]
            return
        run: Run = []
        for event in self.events(valid, client_gone, heartbeat=heartbeat):
            if event is not None:
                run.append(event)
            yield event
        if run and run[-1].finish is not None:  # only whole answers are worth replaying
            self._store(valid, [run])

    def events(self, valid: ValidRequest, client_gone: Callable[[], bool], seed: int | None = None,
               heartbeat: bool = False) -> Iterator[TokenEvent | None]:
        """Yield a sequence's token events until its last; cancel it if the consumer goes away.

        With ``heartbeat``, ``None`` is yielded after ``keepalive_seconds`` without an event (TGI's
        SSE keep-alive, 15 s). ``client_gone`` is polled while waiting and on every token but the
        last: a non-streaming handler writes nothing until the end, and tokens can come faster than
        the poll, so the probe (one select and peek) must not depend on a pause. A generator close
        (the client hung up during a write) cancels too.
        """
        sequence = self.engine.submit(valid, seed=seed)
        deadline = sequence.queued_at + self.request_timeout
        last = sequence.queued_at
        finished = False
        try:
            while True:
                event = self._next_event(sequence, client_gone, deadline)
                if event is None:
                    if heartbeat and time.monotonic() - last > self.keepalive_seconds:
                        last = time.monotonic()
                        yield None
                    continue
                if isinstance(event, ErrorEvent):
                    finished = True
                    error = event.error
                    raise error if isinstance(error, ServerError) else IncompleteGenerationError()
                if event.finish is None and client_gone():
                    raise ClientClosedError()
                now = time.monotonic()
                (self.metrics.ttft if event.index == 1 else self.metrics.inter_token).observe(now - last)
                last = now
                yield event
                if event.finish is not None:
                    finished = True
                    self._observe(event)
                    return
        finally:
            if not finished:
                self.engine.cancel(sequence)

    def _next_event(self, sequence, client_gone: Callable[[], bool], deadline: float):
        """The sequence's next event, or None after ``POLL_SECONDS`` without one (client still there)."""
        if time.monotonic() > deadline:
            raise GenerationError(f"the request exceeded the {self.request_timeout:g} s limit "
                                  "(SAGEMAKER_MODEL_SERVER_TIMEOUT)")
        if SHUTDOWN.expired():  # the worker is about to exit: say so rather than cut the stream
            raise ShuttingDownError()
        try:
            return sequence.events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if client_gone():
                raise ClientClosedError() from None
            return None

    def _observe(self, event: TokenEvent) -> None:
        finish = event.finish
        m = self.metrics
        m.queue_duration.observe(finish.queued_seconds)
        m.inference_duration.observe(finish.inference_seconds)
        m.time_per_token.observe(finish.inference_seconds / max(1, finish.generated_tokens))
        m.generated_tokens.observe(finish.generated_tokens)
        m.input_length.observe(finish.input_length)

    def _collect(self, valid: ValidRequest, client_gone: Callable[[], bool]) -> Run:
        events = [e for e in self.events(valid, client_gone) if e is not None]
        if not events or events[-1].finish is None:
            raise IncompleteGenerationError()
        return events

    def _collect_best_of(self, valid: ValidRequest, client_gone: Callable[[], bool]) -> list[Run]:
        """Run ``best_of`` sequences side by side; the most likely one comes first."""
        n = valid.request.best_of
        if n == 1:
            return [self._collect(valid, client_gone)]
        results = run_side_by_side([lambda: self._collect(valid, client_gone)] * n)
        return sorted(results, key=lambda r: -sum(e.token.logprob or 0.0 for e in r))


def run_side_by_side(jobs: list[Callable[[], object]]) -> list:
    """Each job's result, in order, the jobs run in threads at once (each waits on its own
    sequence, so the engine batches them); the first error is raised in the caller's thread."""
    results: list = [None] * len(jobs)
    errors: list = []

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except Exception as error:  # surfaced below, in the request thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
