"""The OpenAI routes' error bodies, as TGI answers them.

Over HTTP, TGI's OpenAI routes answer with TGI's own ``{"error", "error_type"}`` (its
``ErrorResponse``; huggingface_hub's clients read ``error_type``). Inside a stream the error event
is OpenAI's envelope with TGI's ``http_status_code`` beside OpenAI's ``type`` (our
``error_type``), so a stream reader can raise the same typed error it raises for a TGI stream.
"""

from __future__ import annotations

from ...errors import ServerError


def error_body(error: ServerError) -> dict:
    return error.body()


def error_event(error: ServerError) -> dict:
    return {"error": {"message": error.message, "http_status_code": error.status, "type": error.error_type}}
