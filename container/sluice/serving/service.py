"""Orchestration between the HTTP layer and the engine: admission, caching, waiting, metrics.

A request holds one of ``MAX_CONCURRENT_REQUESTS`` slots from admission to its last byte; with
none free it is refused at once with 429 (TGI's ``try_acquire``: no hidden queue here, the
engine's own queue is bounded by the slots). From the engine to the client the answer goes
through the delivery thread (``delivery``): it makes the text, encodes and writes every stream
once per step, and notices at every step a client that hung up, so an abandoned request frees
its batch row within a step, streaming or not. The request thread only waits for the end.
Its admission work (validation, the hand-over to the engine and the delivery thread) takes
turns with the rest of a burst (``admission``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator

from ..engines.base import GenerationEngine
from ..errors import ClientClosedError, IncompleteGenerationError, OverloadedError, ServerError, ValidationError
from ..request import NO_HEADERS, TGI_NAMES, FieldNames, GenerateRequest, RequestLimits, SageMakerHeaders, ValidRequest
from ..text.events import Finish
from .adapters import AdapterRegistry
from .admission import GATE
from .delivery import StreamHub
from .exchange import Outcome, Run
from .metrics import Metrics
from .response_cache import ResponseCache, cache_key
from .session_store import Session
from .sessions import Sessions
from .stream_consumers import Collector, StreamConsumer, StreamEncoder
from .validation import Validator

if TYPE_CHECKING:
    import socket

    from .grammar import GrammarCompiler

log = logging.getLogger("sluice.service")


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
        # The delivery thread: the engine hands its steps there from now on. An engine whose
        # steps are CPU work here has them delivered in its own thread, between steps.
        inline = engine.steps_on_this_cpu
        self.delivery = StreamHub(engine, self.metrics, inline=inline).start()
        engine.deliver_to(self.delivery)
        log.info("delivery: %s", "in the engine's thread, between its steps" if inline else "its own thread")
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
        return self.engine.healthy() and self.delivery.alive

    def describe(self) -> dict:
        return self.engine.describe()

    def close(self, timeout: float) -> bool:
        """The worker is exiting: stop the engine (requests have had their in-band end)."""
        self.delivery.stop()
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
        with GATE:  # admission work: a burst takes turns (``admission``)
            valid = self.validator.validate(request, names, add_special_tokens,
                                            session.transcript if session is not None else None)
        valid = dataclasses.replace(valid, sagemaker=sagemaker, adapter=adapter,
                                    session=Sessions.pin(session) if pin else None)
        if request.grammar is None:
            return valid
        if self.grammars is None:
            raise ValidationError("grammar is not supported")
        GATE.give()  # a compile may wait on the compile pool: not in a turn
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

    def complete_all(self, valids: list[ValidRequest], client: "socket.socket | None" = None) -> list[Outcome]:
        """Every prompt of a non-streaming request; several are submitted together, so the engine
        batches them instead of running one after another. ``client``: the client's socket,
        whose closing cancels them."""
        GATE.give()  # the prompts wait for their answers, each submitted in its own turn
        if len(valids) == 1:
            return [self.complete(valids[0], client)]
        return run_side_by_side([lambda v=v: self.complete(v, client) for v in valids])

    def complete(self, valid: ValidRequest, client: "socket.socket | None" = None) -> Outcome:
        """All sequences of one prompt (best first), and whether they came from cache."""
        runs = self.cached(valid)
        if runs is not None:
            return Outcome(runs, True)
        runs = self._collect_best_of(valid, client)
        self._store(valid, runs)
        return Outcome(runs, False)

    def stream(self, valid: ValidRequest, encoder: StreamEncoder, raw_body=None,
               client: "socket.socket | None" = None, session: Session | None = None,
               add_special_tokens: bool = True) -> Iterator[bytes]:
        """A streamed answer's bytes for the WSGI server. With ``raw_body`` (gunicorn's socket)
        only the headers go through the server: the delivery thread writes the body itself and
        this generator waits for its end. Raises what the answer ended with (its error event
        already written: ``delivered``), ClientClosedError if the client left. In a ``session``
        a whole answer continues the session's transcript."""
        keep_run = self.cache.enabled or session is not None
        consumer = StreamConsumer(encoder, raw_body, self.keepalive_seconds, keep_run=keep_run)
        if raw_body is not None:
            yield b""  # the status line and headers, now
        with GATE:
            sequence = self.engine.submit(valid)
            self.delivery.follow(sequence, consumer, self.request_timeout, client)
        GATE.give()  # admitted: a turn held since the request arrived ends here
        ended = False
        try:
            yield from consumer.chunks(self._delivering)
            ended = True
        finally:
            if not ended:
                self.engine.cancel(sequence)
                self.delivery.forget(sequence)
        self._observe(consumer.finish)
        if consumer.run and consumer.run[-1].finish is not None:  # only whole answers are worth keeping
            self._store(valid, [consumer.run])
            self.sessions.record(session, valid, consumer.run, add_special_tokens)

    def _delivering(self) -> bool:
        """A waiting request's check, once a second: with the delivery thread or the engine's
        gone, its answer will never come (it ends with ``incomplete_generation``)."""
        return self.healthy()

    def _observe(self, finish: Finish | None) -> None:
        if finish is None:
            return
        m = self.metrics
        m.queue_duration.observe(finish.queued_seconds)
        m.inference_duration.observe(finish.inference_seconds)
        m.time_per_token.observe(finish.inference_seconds / max(1, finish.generated_tokens))
        m.generated_tokens.observe(finish.generated_tokens)
        m.input_length.observe(finish.input_length)

    def _collect(self, valid: ValidRequest, client) -> Run:
        """One sequence's whole run, its thread woken once, at the end."""
        collector = Collector()
        with GATE:
            sequence = self.engine.submit(valid)
            self.delivery.follow(sequence, collector, self.request_timeout, client)
        GATE.give()
        ended = False
        try:
            events = collector.wait(self._delivering)
            ended = True
        finally:
            if not ended:
                self.engine.cancel(sequence)
                self.delivery.forget(sequence)
        if not events or events[-1].finish is None:
            raise IncompleteGenerationError()
        self._observe(events[-1].finish)
        return events

    def _collect_best_of(self, valid: ValidRequest, client) -> list[Run]:
        """Run ``best_of`` sequences side by side; the most likely one comes first."""
        n = valid.request.best_of
        if n == 1:
            return [self._collect(valid, client)]
        results = run_side_by_side([lambda: self._collect(valid, client)] * n)
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
