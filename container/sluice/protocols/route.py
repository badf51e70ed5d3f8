"""A protocol's route, as the HTTP app registers it: the path, and what answers it.

The app knows no protocol by name: it registers every ``Route`` of ``protocols.registry``, sends
each body to the dialect the route chooses, and answers the route's HTTP errors with the route's
own error body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ServerError
from ..serving.exchange import Dialect


@dataclass(frozen=True)
class Route:
    """One generation route (POST): ``choose`` picks the dialect from the body (the same one for
    most routes; ``/invocations`` decides by the body's shape); ``error_body`` writes its HTTP
    errors (an error inside a stream is the dialect's ``encode_error``)."""

    path: str
    name: str  # Flask's endpoint name, unique across protocols
    choose: Callable[[object], Dialect]
    error_body: Callable[[ServerError], dict]

    @classmethod
    def to(cls, path: str, name: str, dialect: Dialect, error_body: Callable[[ServerError], dict]) -> "Route":
        """A route that one dialect answers, whatever the body."""
        return cls(path, name, lambda body: dialect, error_body)
