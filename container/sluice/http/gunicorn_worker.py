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
being cut.
"""

from __future__ import annotations

import socket
import struct
import time
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
from ..serving.shutdown import CLOCK as SHUTDOWN
from ..wire.framing import dump_json

CLIENT_IDLE_TIMEOUT = 5.0  # seconds a receive waits for the client; gunicorn's own first-data wait
LINGER_SECONDS = 2.0  # as gunicorn's close_graceful: let the peer read our answer before we close
LINGER_MAX_BYTES = 64 * 1024

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
        super().init_process()

    def handle(self, conn):
        """One turn of a connection in a worker thread, with receives bounded in time."""
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(CLIENT_IDLE_TIMEOUT))
        keepalive = super().handle(conn)
        if keepalive is False:
            _linger(conn.sock)  # gunicorn then closes it from its main loop, at once
        return keepalive

    def handle_request(self, req, conn):
        if not self.alive:
            return self._refuse(req, conn, ShuttingDownError())
        if _expects_continue(req) and _declared_length(req) > self.payload_limit:
            # Before gunicorn sends "100 Continue": the client then never sends the body.
            return self._refuse(req, conn, PayloadTooLargeError(self.payload_limit))
        return super().handle_request(req, conn)

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
        """SIGTERM: stop accepting at once (from the main loop, which owns the listeners), and
        start the clock after which requests still running end with an in-band error."""
        SHUTDOWN.start(self.cfg.graceful_timeout)
        super().handle_exit(sig, frame)
        self.method_queue.defer(self._close_listeners)

    def _close_listeners(self):
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()

    def accept(self, listener):
        if self.alive:  # a readiness event may still be queued for a listener closed at SIGTERM
            super().accept(listener)


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
    would stall accepting for everyone; after this, its recv() sees EOF at once.
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
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # already closed or reset: nothing left to linger for
