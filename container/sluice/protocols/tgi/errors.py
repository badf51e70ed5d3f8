"""TGI's error body, ``ErrorResponse``: ``{"error": str, "error_type": str}``, over HTTP (with the
error's status) and as a stream's last event (in an HTTP 200 stream). text-generation and
huggingface_hub turn ``error_type`` into typed exceptions. It is also the server's own shape
(``errors.ServerError.body``) for what no protocol answers: transport errors, health, 404s."""

from __future__ import annotations

from ...errors import ServerError


def error_body(error: ServerError) -> dict:
    return error.body()


def error_event(error: ServerError) -> dict:
    """A stream's error event: the same body, so a stream reader raises the same typed error."""
    return error_body(error)
