"""gunicorn's gthread worker, made to answer hostile transport with TGI's JSON errors.

What gunicorn answers before the app sees a request (a bad request line or header, an oversized
URL or header block, a bad chunk) would be an HTML page; here it is ``{"error", "error_type"}``
with the same status. The worker also bounds what a hostile client can hold: every receive
times out after ``CLIENT_IDLE_TIMEOUT`` (a stalled body becomes a 408 in the app, a stalled header
block is closed), and the lingering close of a connection runs in its worker thread rather than in
gunicorn's main loop, which accepts connections and must never wait on one client. After SIGTERM
the listening socket closes at once (new connections are refused instead of queueing until the
worker exits) and requests on open connections get 503, while in-flight streams finish; one still
running 2 s before the graceful window ends gets an in-band ``shutting_down`` error instead of
being cut. A burst of connections is accepted in one turn of gunicorn's main loop rather than
one per turn. Ctrl-C (SIGINT, which the terminal sends to every process of the server; the arbiter
passes its own on as SIGQUIT) does the same at once: running streams end with that event and the
worker is gone within ``QUICK_EXIT_SECONDS``; a second Ctrl-C ends it immediately. The worker
always exits by itself, before the arbiter's deadline (``worker_exit``).
"""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from concurrent import futures
from http import HTTPStatus

from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import _DEFER as WAIT_IN_POLLER  # gunicorn==27.0.1 (runtime.txt)
from gunicorn.workers.gthread import ThreadWorker

from ..config import Config
from ..errors import (
    BadRequestError,
    ExpectationFailedError,
    HeadersTooLargeError,
    InternalError,
    PayloadTooLargeError,
    ServerError,
    ShuttingDownError,
    TransferCodingNotImplementedError,
    UriTooLongError,
)
from ..serving.admission import GATE
from ..serving.shutdown import CLOCK as SHUTDOWN
from ..wire.framing import dump_json
from .raw_body import with_raw_body
from .whole_request import request_arrival
from .worker_exit import WorkerExit

CLIENT_IDLE_TIMEOUT = 5.0  # seconds a receive waits for the client
LINGER_SECONDS = 2.0  # as gunicorn's close_graceful: let the peer read our answer before we close
LINGER_MAX_BYTES = 64 * 1024
QUICK_EXIT_SECONDS = 1.0  # Ctrl-C: streams get their in-band end, then the worker goes (the
# arbiter, stopped by SIGTERM first, allows 2 s after a Ctrl-C before its SIGKILL)
ACCEPT_BURST = 64  # connections accepted in one turn of gunicorn's main loop, at most
HEARTBEAT_SECONDS = 1.0  # the arbiter's heartbeat file is touched at most this often
EXIT_MARGIN_SECONDS = 1.0  # SIGTERM: the worker starts its exit (at most 0.5 s) this long before the arbiter's SIGKILL

# gunicorn's parse errors, most specific first, and the error each is answered with.
_PARSE_ERRORS = (
    (LimitRequestLine, UriTooLongError),
    (LimitRequestHeaders, HeadersTooLargeError),
    (ExpectationFailed, ExpectationFailedError),
    (UnsupportedTransferCoding, TransferCodingNotImplementedError),
)


class SluiceThreadWorker(ThreadWorker):
    """``ThreadWorker`` with JSON errors, bounded client reads and an immediate stop of new work."""

    def init_process(self):
        self.payload_limit = Config.from_environ().payload_limit
        self.process_exit = WorkerExit(self.log, self.pid).start()
        self.quit_signals: set[int] = set()
        super().init_process()

    def get_thread_pool(self):
        """gunicorn's pool with every thread started now, before the first request. A pool left
        to grow starts a thread when a connection finds none idle, in gunicorn's main loop, which
        then waits until the new thread has run; in a burst each new thread waits for the GIL
        behind the request threads already running, so the first burst a worker sees was
        accepted far slower than the next (first tokens p50 360 ms against 135 ms, 256 streams)."""
        pool = super().get_thread_pool()
        started = threading.Event()
        waits = [pool.submit(started.wait) for _ in range(self.cfg.threads)]  # none idle: a thread each
        started.set()
        futures.wait(waits)
        return pool

    def load_wsgi(self):
        """The app, given each response's socket for a streamed body (``raw_body``)."""
        super().load_wsgi()
        self.wsgi = with_raw_body(self.wsgi)

    def notify(self):
        """The heartbeat the arbiter reads, at most once per ``HEARTBEAT_SECONDS``: gunicorn's
        loop touches its file on every turn, a system call that lets the GIL go, so in a burst
        each turn then waited for the GIL behind the request threads before it could accept or
        dispatch the next connections. (The arbiter reads it only with a worker timeout, which
        Sluice sets to 0; a second's resolution is plenty for any.)"""
        now = time.monotonic()
        if now - getattr(self, "_last_heartbeat", -HEARTBEAT_SECONDS) >= HEARTBEAT_SECONDS:
            self._last_heartbeat = now
            super().notify()

    def run(self):
        """gunicorn's loop and drain, then the worker's own exit (see ``worker_exit``)."""
        super().run()
        self.process_exit.now()

    def handle(self, conn):
        """One turn of a connection in a worker thread, with receives bounded in time.

        gunicorn's own handle waits up to 5 s in the thread for a new connection's first bytes:
        a hundred clients that connect and send nothing then hold every thread, pings included,
        for those 5 s. Here a new connection with not a byte after ``whole_request``'s short look
        (``ARRIVAL_SECONDS``) goes back to gunicorn's poller (its keep-alive timeout closes it
        there), and comes back with a thread when it sends."""
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(CLIENT_IDLE_TIMEOUT))
        # A whole generation request holds one admission turn until the engine has it (``whole_request``).
        arrived = request_arrival(conn.sock)
        if arrived is None and not conn.initialized and not conn.data_ready:
            return WAIT_IN_POLLER
        whole = arrived is True
        if arrived is not None:  # bytes are there: gunicorn's wait for them (a selector per connection) is moot
            conn.data_ready = True
        turn = whole and GATE.take()
        try:
            keepalive = super().handle(conn)
        finally:
            if turn:
                GATE.give()
        if keepalive is False:
            _linger(conn.sock)  # gunicorn then closes it from its main loop, at once
        return keepalive

    def handle_request(self, req, conn):
        if not self.alive:
            return self._refuse(req, conn, ShuttingDownError())
        if _expects_continue(req) and _declared_length(req) > self.payload_limit:
            # Before gunicorn sends "100 Continue": the client then never sends the body.
            return self._refuse(req, conn, PayloadTooLargeError(self.payload_limit))
        # A request that ends after shutdown began closes its connection: a kept-alive one
        # would only be refused next, and would hold the drain open meanwhile.
        return super().handle_request(req, conn) and self.alive

    def _refuse(self, req, conn, error: ServerError) -> bool:
        self.log.info("Refused %s %s: %s", req.method, req.path, error.message)
        write_json_error(conn.sock, error)
        return False

    def handle_error(self, req, client, addr, exc):
        """gunicorn's error page, as JSON: same status, TGI's ``{"error", "error_type"}`` body."""
        error = _error_for(exc)
        if isinstance(error, InternalError):
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            write_json_error(client, error)
        except OSError:
            self.log.debug("Failed to send error message.")

    def handle_exit(self, sig, frame):
        """SIGTERM: stop accepting at once (from the main loop, which owns the listeners), start
        the clock after which requests still running end with an in-band error, and exit before
        the arbiter's SIGKILL at the end of the same graceful window."""
        SHUTDOWN.start(self.cfg.graceful_timeout)
        self._stop(self.cfg.graceful_timeout - EXIT_MARGIN_SECONDS)

    def handle_quit(self, sig, frame):
        """SIGINT or SIGQUIT: what SIGTERM does, without the wait. gunicorn's own handler calls
        ``sys.exit()`` here, which waits for every running stream and aborts at exit."""
        if sig in self.quit_signals:  # a second Ctrl-C: the user wants it gone now
            self.process_exit.at_once(f"second {signal.Signals(sig).name}")
        self.quit_signals.add(sig)
        if len(self.quit_signals) == 1:  # Ctrl-C brings both the terminal's SIGINT and the arbiter's SIGQUIT
            SHUTDOWN.expire_now()
            self._stop(QUICK_EXIT_SECONDS)

    def _stop(self, exit_within: float):
        self.process_exit.at_the_latest_in(exit_within)
        super().handle_exit(signal.SIGTERM, None)  # alive = False, and the main loop wakes up
        self.method_queue.defer(self._close_listeners)

    def _close_listeners(self):
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    def accept(self, listener):
        """Every connection waiting (up to ``ACCEPT_BURST``) in one turn of the main loop:
        gunicorn takes one per turn, and each turn's calls (the arbiter's heartbeat, the poll)
        must win the GIL back from the request threads already running, so a burst of 512
        streams took ~1 s just to be accepted."""
        for _ in range(ACCEPT_BURST):
            if not self.alive:  # a readiness event may still be queued for a listener closed at SIGTERM
                return
            before = self.nr_conns
            super().accept(listener)  # the listener does not block: none waiting ends the burst
            if self.nr_conns == before or self.nr_conns >= self.worker_connections:
                return


def write_json_error(sock, error: ServerError) -> None:
    """A complete HTTP/1.1 error answer that closes the connection."""
    body = dump_json(error.body()).encode("utf-8")
    head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def _error_for(exc: BaseException) -> ServerError:
    for kind, error in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return error(f"{HTTPStatus(error.status).phrase}: {exc}")
    if isinstance(exc, ParseException) and not isinstance(exc, ConfigurationProblem):
        return BadRequestError(f"Bad Request: {exc}")
    return InternalError()


def _expects_continue(req) -> bool:
    return any(name == "EXPECT" and value.strip().lower() == "100-continue" for name, value in req.headers)


def _declared_length(req) -> int:
    values = [value for name, value in req.headers if name == "CONTENT-LENGTH"]
    return int(values[0]) if values else 0  # gunicorn has checked it is one non-negative integer


def _timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))


def _linger(sock) -> None:
    """Half-close, read what the peer still sends for a moment, then shut reading too.

    gunicorn's own graceful close does this wait in its main loop, so a client that never closes
    would stall accepting for everyone; after this, its recv() sees EOF at once. Reading is shut
    whatever happened before, above all when the wait timed out: a stalled client is exactly the
    one that never closes (20 of them once held the main loop 40 s, and every /ping with it).
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline, drained = time.monotonic() + LINGER_SECONDS, 0
        while drained < LINGER_MAX_BYTES and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            data = sock.recv(4096)
            if not data:
                break
            drained += len(data)
    except OSError:
        pass  # timed out, reset or already closed: nothing more to read either way
    finally:
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # already closed or reset
