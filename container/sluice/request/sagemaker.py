"""What a client asked for through SageMaker's request headers, as one typed value.

SageMaker forwards only some headers to the container (``X-Amzn-SageMaker-Custom-Attributes``
among them, up to 1024 characters, conventionally comma-separated ``k=v`` pairs); the HTTP layer
reads them once (``http.sagemaker_headers``) into this value, which travels with the validated
request through the driver and the service to the engine. A new header feature is a field here,
its parsing there, and the code that honours it; what changes the tokens also goes into
``cache_scope``, so a cached answer is never replayed to a request that asked for another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SageMakerHeaders:
    use_cache: bool = True  # False: generate afresh (x-use-cache: 0, or the custom attribute)
    custom_attributes: tuple[tuple[str, str], ...] = ()  # every k=v pair, in the order sent
    adapter: str | None = None  # X-Amzn-SageMaker-Adapter-Identifier: the LoRA adapter to run with
    session_id: str | None = None  # X-Amzn-SageMaker-Session-Id, as sent (serving.sessions checks it)

    def attributes(self, name: str) -> list[str]:
        """Every value of custom attribute ``name`` (case-insensitive), in the order sent."""
        return [value for key, value in self.custom_attributes if key.lower() == name.lower()]

    def attribute(self, name: str) -> str | None:
        """The value of custom attribute ``name`` (case-insensitive), the last one sent; None if absent."""
        values = [value for key, value in self.custom_attributes if key.lower() == name.lower()]
        return values[-1] if values else None

    def cache_scope(self) -> tuple:
        """The part of the response cache's key these headers decide: nothing yet. (The adapter
        header changes the tokens, but serving resolves it, with the body's choice, into the
        validated request's ``adapter``, which keys the cache itself.)"""
        return ()


NO_HEADERS = SageMakerHeaders()
