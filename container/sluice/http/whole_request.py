"""Whether a connection's whole generation request has already arrived: peeked, never read.

A burst's requests are admitted in turns (``serving.admission``). A request whose bytes are all
in the socket's buffer can hold one turn from its first parsed byte to its hand-over to the
engine: nothing it does in between waits for its client, so the burst is admitted one request
after another instead of hundreds of threads sharing the GIL until nearly all are in (and none
gets a first token before then). A request still arriving (a slow client, a chunked body, one
that waits for ``100 Continue``) or one for another route (registering an adapter reads its
weights) takes turns only for its own admission work, as before.
"""

from __future__ import annotations

import re
import select
import socket
import time

from ..protocols.registry import ROUTES

PEEK_BYTES = 64 * 1024  # a larger request takes turns piece by piece
ARRIVAL_SECONDS = 0.1
PARTIAL_PAUSE_SECONDS = 0.002
GENERATION_PATHS = frozenset(route.path.encode("ascii") for route in ROUTES)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,9})[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED_OR_CONTINUE = re.compile(rb"\r\n(?:transfer-encoding|expect):", re.IGNORECASE)


def whole_generation_request(sock: socket.socket) -> bool:
    """A POST to a generation route whose head and ``Content-Length`` body are all buffered,
    waiting at most ``ARRIVAL_SECONDS`` for its bytes: gunicorn hands a connection to its thread
    as it accepts it, usually just before the request's bytes land (the thread would wait for
    them in its first receive anyway)."""
    return request_arrival(sock) is True


def request_arrival(sock: socket.socket) -> bool | None:
    """What ``whole_generation_request`` sees, and one thing more: None when not a byte arrived
    (nor the client's close) within ``ARRIVAL_SECONDS``, a silent connection; True a whole
    generation request; False anything else."""
    deadline = time.monotonic() + ARRIVAL_SECONDS
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    while True:
        try:
            data = sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            data = None
        except OSError:
            return False
        if data == b"":  # the client closed
            return False
        verdict = None if data is None else classify(data)
        if verdict is not None:
            return verdict
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None if data is None else False
        if data is None:
            poller.poll(remaining * 1000)
        else:  # part of it: the rest is on its way (the socket stays readable meanwhile)
            time.sleep(min(remaining, PARTIAL_PAUSE_SECONDS))


def is_whole_generation_request(data: bytes) -> bool:
    return classify(data) is True


def classify(data: bytes) -> bool | None:
    """True: a whole generation request; False: never one (another route, a chunked body,
    ``Expect``, lengths gunicorn refuses); None: not all of it yet."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None if len(data) < PEEK_BYTES else False
    head = data[:head_end + 2]
    line = head[:head.find(b"\r\n")].split(b" ")
    if len(line) != 3 or line[0] != b"POST" or line[1].split(b"?", 1)[0] not in GENERATION_PATHS:
        return False
    if _CHUNKED_OR_CONTINUE.search(head):
        return False
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) != 1:
        return False
    end = head_end + 4 + int(lengths[0])
    if end > PEEK_BYTES:
        return False
    return True if len(data) >= end else None
