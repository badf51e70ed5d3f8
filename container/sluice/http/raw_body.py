"""A streamed body written straight to gunicorn's socket, in gunicorn's own framing.

A stream's bytes come from the delivery thread (``serving.delivery``), many streams per step;
going through each request's WSGI iterator would cost a thread wake-up and a pass through
werkzeug and gunicorn per stream per step. gunicorn's worker (``gunicorn_worker``) therefore
hands the app, with each request, its response's socket: once the response's headers are out
(the app's iterator yields ``b""`` first), the body is written here, framed as gunicorn frames
it (HTTP/1.1 chunked, or raw for an HTTP/1.0 client), with gunicorn's byte count kept; when the
iterator ends, gunicorn writes the last chunk as usual.
"""

from __future__ import annotations

RAW_BODY = "sluice.raw_body"  # the WSGI environ key


class RawBody:
    def __init__(self, sock, response):
        """``response``: gunicorn's ``Response`` of this request (its ``chunked`` is decided when
        the app starts the response)."""
        self.sock = sock
        self._response = response

    def frame(self, data: bytes) -> bytes:
        return b"%X\r\n%s\r\n" % (len(data), data) if self._response.chunked else data

    def count(self, sent: int) -> None:
        self._response.sent += sent


def with_raw_body(app):
    """The WSGI app, given ``environ[RAW_BODY]`` under gunicorn (whose ``start_response`` is its
    ``Response``'s bound method)."""
    def application(environ, start_response):
        response = getattr(start_response, "__self__", None)
        sock = environ.get("gunicorn.socket")
        if sock is not None and hasattr(response, "chunked") and hasattr(response, "sent"):
            environ[RAW_BODY] = RawBody(sock, response)
        return app(environ, start_response)

    return application
