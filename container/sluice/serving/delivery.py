"""From engine steps to clients: one thread per worker makes every step's text, events and bytes.

An engine hands over each step once (``publish``: every running sequence's new tokens in one
call) and goes on with its next step; on a GPU that step then overlaps all of this. The hub's one
thread runs, for each sequence of the step, its ``SequenceText`` (detokenizer, stop rules,
events) and gives the events to the request's consumer:

- a streamed answer (``StreamConsumer``) has them encoded by its protocol and framed, and the
  hub writes them to the client's socket itself: one non-blocking ``send`` per stream per step,
  with whatever is ready (several steps' worth when the hub fell behind). The request's own
  thread only had the headers sent and then waits for the end: no wake-up per token. Where there
  is no raw socket (another WSGI server, a test client), or once a client reads too slowly for a
  non-blocking send, the request thread writes the bytes the hub hands it instead;
- a non-streamed answer (``Collector``) keeps the events; its thread is woken once, at the end.

The hub also does, for every request it delivers, what request threads used to do per token: at
every step it notices the clients that hung up (one ``epoll`` call over all their sockets; the
sequence is cancelled, so its batch row is freed within a step), and every ``TICK_SECONDS`` it
checks the requests' time limits, the shutdown clock and the SSE keep-alive. A sequence whose
text finished first (a stop sequence) is released to the engine, which drops it at its next step.

Messages (steps, failures, registrations) are applied in the order they were posted, so a step
that arrives before its request registered is kept for it, and nothing is delivered twice.

Where the engine's step is itself CPU work in this process (an engine on the CPU), a thread
delivering beside it would take a core from the step's OpenMP threads, which all wait for the
slowest (measured: the own engine at 16 streams on 2 cores fell to a fifth). There the hub runs
``inline``: each message is handled in the thread that posts it, the engine's own between two
steps, as before, and the hub's thread only keeps the time.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

from ..errors import ClientClosedError, GenerationError, IncompleteGenerationError, ShuttingDownError
from ..text.events import TokenEvent
from ..text.stopping import STOP_SEQUENCE
from .shutdown import CLOCK as SHUTDOWN

log = logging.getLogger("sluice.delivery")

TICK_SECONDS = 0.05
_WATCHED = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


class _Delivery:
    __slots__ = ("sequence", "consumer", "pending", "pending_error", "last", "deadline", "limit", "fd")

    def __init__(self, sequence):
        self.sequence = sequence
        self.consumer = None
        self.pending: list[TokenEvent] = []  # events made before the request registered
        self.pending_error: Exception | None = None
        self.last = sequence.queued_at  # when its previous token (or its arrival) was seen
        self.deadline = float("inf")
        self.limit = 0.0
        self.fd: int | None = None


class StreamHub:
    """The worker's one delivery thread; see the module docstring."""

    def __init__(self, engine, metrics=None, tick_seconds: float = TICK_SECONDS, inline: bool = False):
        """``engine``: told when a sequence needs no more tokens (``cancel``: its client left or
        its time ran out; ``release``: its text finished first). ``inline``: messages are handled
        at once in the thread that posts them (the engine's, between its steps) and the hub's
        thread only ticks: for an engine whose steps are CPU work in this process, where a
        delivery thread running beside the step would take a core from its OpenMP threads."""
        self._engine = engine
        self._metrics = metrics
        self._tick = tick_seconds
        self._inline = inline
        self._next_check = time.monotonic() + tick_seconds
        self._state = threading.Lock()  # the deliveries: one thread at a time
        self._inbox: list[tuple] = []
        self._cond = threading.Condition()
        self._deliveries: dict[int, _Delivery] = {}
        self._by_fd: dict[int, list[_Delivery]] = {}
        self._epoll = select.epoll()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sluice-delivery", daemon=True)

    def start(self) -> "StreamHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- posted from other threads ----------------------------------------------------------------

    def _post(self, message: tuple) -> None:
        if self._inline:
            with self._state:
                self._process([message])
            return
        with self._cond:
            self._inbox.append(message)
            self._cond.notify()

    def publish(self, step: list[tuple[object, list]]) -> None:
        """An engine's step: each running sequence with the tokens it chose (usually one)."""
        self._post(("step", step))

    def fail(self, sequences: list, error: Exception) -> None:
        """An engine cannot go on with ``sequences``: each answer ends with ``error``."""
        self._post(("fail", sequences, error))

    def follow(self, sequence, consumer, time_limit: float, client: socket.socket | None = None) -> None:
        """Deliver ``sequence`` to ``consumer`` until it ends, at most ``time_limit`` seconds from
        its arrival; ``client``: the client's socket, whose closing cancels it."""
        self._post(("follow", sequence, consumer, time_limit, client))

    def forget(self, sequence) -> None:
        """Its request thread stopped reading (the generator was closed, or it failed)."""
        self._post(("forget", sequence))

    # --- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._inbox and not self._stopped:
                    self._cond.wait(max(0.0, self._next_check - time.monotonic()))
                if self._stopped:
                    return
                inbox, self._inbox = self._inbox, []
            with self._state:
                self._process(inbox)

    def _process(self, messages: list[tuple]) -> None:
        """Apply ``messages`` in order, check the clients (and, once a tick, the limits), then
        write what they produced: one flush per touched answer. Holds ``_state``."""
        now = time.monotonic()
        touched: dict[int, _Delivery] = {}
        for message in messages:
            try:
                getattr(self, "_on_" + message[0])(now, touched, *message[1:])
            except Exception:  # one bad message must not stop delivery for everyone
                log.exception("delivery: handling %s failed", message[0])
                if message[0] == "follow":  # its request must not wait for ever
                    message[2].error(IncompleteGenerationError())
                    message[2].close()
        try:
            self._check_clients(touched)
            if now >= self._next_check:
                self._check_limits(now, touched)
                self._next_check = now + self._tick
        except Exception:
            log.exception("delivery: the checks failed")
        for delivery in touched.values():
            self._flush(delivery, now)

    def _delivery(self, sequence) -> _Delivery | None:
        """The sequence's delivery, made on first sight; None once its delivery is over."""
        delivery = self._deliveries.get(sequence.id)
        if delivery is None:
            if sequence.text.closed:
                return None
            delivery = self._deliveries[sequence.id] = _Delivery(sequence)
        return delivery

    def _on_step(self, now: float, touched: dict, step) -> None:
        metrics = self._metrics
        first_tokens, next_tokens = [], []  # latencies, observed once for the step
        for sequence, choices in step:
            text = sequence.text
            if text.finished or text.closed:
                continue  # the engine went on past the end (a stop sequence): nobody wants it
            delivery = self._delivery(sequence)
            try:
                events = []
                for choice in choices:
                    events.append(text.add(sequence, choice, now))
                    if text.finished:
                        break
            except Exception:
                log.exception("sequence %d: making its text failed", sequence.id)
                self._end(delivery, IncompleteGenerationError(), touched)
                continue
            if not events:
                continue
            for event in events:
                (first_tokens if event.index == 1 else next_tokens).append(now - delivery.last)
                delivery.last = now
            if delivery.consumer is None:
                delivery.pending += events
            else:
                self._hand(delivery, events, now, touched)
            finish = events[-1].finish
            if finish is not None and finish.finish_reason == STOP_SEQUENCE:
                self._engine.release(sequence)  # the engine cannot know: it drops it next step
        if metrics is not None:
            if first_tokens:
                metrics.ttft.observe_all(first_tokens)
            if next_tokens:
                metrics.inter_token.observe_all(next_tokens)

    def _hand(self, delivery: _Delivery, events: list[TokenEvent], now: float, touched: dict) -> None:
        try:
            delivery.consumer.events(events, now)
        except Exception:
            log.exception("sequence %d: encoding its events failed", delivery.sequence.id)
            self._end(delivery, IncompleteGenerationError(), touched)
            return
        touched[delivery.sequence.id] = delivery

    def _on_fail(self, now: float, touched: dict, sequences, error: Exception) -> None:
        for sequence in sequences:
            if sequence.text.finished or sequence.text.closed:
                continue
            delivery = self._delivery(sequence)
            if delivery.consumer is None:
                delivery.pending_error = error
            else:
                self._end(delivery, error, touched, cancel=False)

    def _on_follow(self, now: float, touched: dict, sequence, consumer, time_limit: float, client) -> None:
        delivery = self._delivery(sequence)
        if delivery is None:
            return
        delivery.consumer, delivery.limit = consumer, time_limit
        delivery.deadline = sequence.queued_at + time_limit
        if client is not None:
            self._watch(delivery, client)
        if delivery.pending:
            pending, delivery.pending = delivery.pending, []
            self._hand(delivery, pending, now, touched)
        if delivery.pending_error is not None and not sequence.text.finished:
            self._end(delivery, delivery.pending_error, touched, cancel=False)

    def _on_forget(self, now: float, touched: dict, sequence) -> None:
        delivery = self._deliveries.get(sequence.id)
        touched.pop(sequence.id, None)
        if delivery is not None:
            self._drop(delivery)
        sequence.text.closed = True

    def _end(self, delivery: _Delivery, error: Exception, touched: dict, cancel: bool = True) -> None:
        """The answer ends with ``error`` (in-band where it can be); the engine stops it."""
        delivery.consumer.error(error)
        if cancel:
            self._engine.cancel(delivery.sequence)
        touched[delivery.sequence.id] = delivery

    def _flush(self, delivery: _Delivery, now: float) -> None:
        consumer = delivery.consumer
        handed_over = getattr(consumer, "handed_over", False)
        try:
            complete = consumer.flush(now)
        except Exception:
            log.exception("sequence %d: writing its answer failed", delivery.sequence.id)
            consumer.outcome, complete = IncompleteGenerationError(), True
        if not handed_over and getattr(consumer, "handed_over", False):
            log.info("sequence %d: its client reads slowly; its request thread writes the rest",
                     delivery.sequence.id)
        if complete:
            if isinstance(consumer.outcome, ClientClosedError):
                self._engine.cancel(delivery.sequence)
            self._drop(delivery)
            consumer.close()

    def _drop(self, delivery: _Delivery) -> None:
        delivery.sequence.text.closed = True
        self._deliveries.pop(delivery.sequence.id, None)
        fd = delivery.fd
        if fd is None:
            return
        delivery.fd = None
        sharing = self._by_fd.get(fd, [])
        if delivery in sharing:
            sharing.remove(delivery)
        if not sharing:
            self._by_fd.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass

    def _watch(self, delivery: _Delivery, client: socket.socket) -> None:
        """Its client's socket joins the ``epoll`` (a request's prompts share one socket; a
        number left by a closed connection may be another connection's by now: register anew)."""
        try:
            fd = client.fileno()
            if fd < 0:
                return
            self._epoll.register(fd, _WATCHED)
        except FileExistsError:
            pass
        except OSError:
            return
        self._by_fd.setdefault(fd, []).append(delivery)
        delivery.fd = fd

    def _check_clients(self, touched: dict) -> None:
        """At every step (one ``epoll`` call for all): the clients that hung up."""
        for fd, _ in self._epoll.poll(0):
            for delivery in list(self._by_fd.get(fd, [])):
                if delivery.consumer is not None and not delivery.consumer.finished:
                    self._end(delivery, ClientClosedError(), touched)

    def _check_limits(self, now: float, touched: dict) -> None:
        """Once a tick: time limits, the shutdown clock, keep-alives."""
        shutting_down = SHUTDOWN.expired()
        for delivery in list(self._deliveries.values()):
            consumer = delivery.consumer
            if consumer is None or consumer.finished:
                continue
            if shutting_down:  # the worker is about to exit: say so rather than cut the stream
                self._end(delivery, ShuttingDownError(), touched)
            elif now > delivery.deadline:
                self._end(delivery, GenerationError(f"the request exceeded the {delivery.limit:g} s limit "
                                                    "(SAGEMAKER_MODEL_SERVER_TIMEOUT)"), touched)
            elif consumer.tick(now):
                touched[delivery.sequence.id] = delivery
