"""SageMaker's one route, ``/invocations``, as TGI (>= 2.4) serves it: its untagged
``SagemakerRequest`` picks the protocol by the body's shape. Its errors are TGI's (the route is)."""

from __future__ import annotations

from ..errors import DeserializeError
from ..serving.exchange import Dialect
from .openai.routes import CHAT, COMPLETIONS
from .route import Route
from .tgi.errors import error_body
from .tgi.routes import COMPAT


def invocations_dialect(payload) -> Dialect:
    """A string ``inputs`` wins, then ``messages``, then ``prompt``; a non-string ``inputs`` gets
    the generate route's exact error."""
    if isinstance(payload, dict) and isinstance(payload.get("inputs"), str):
        return COMPAT
    if isinstance(payload, dict) and "messages" in payload:
        return CHAT
    if isinstance(payload, dict) and "prompt" in payload:
        return COMPLETIONS
    if isinstance(payload, dict) and "inputs" in payload:
        return COMPAT
    raise DeserializeError("data did not match any variant of untagged enum SagemakerRequest "
                           "(expected `inputs`, `messages` or `prompt`)")


ROUTE = Route("/invocations", "invocations", invocations_dialect, error_body)
