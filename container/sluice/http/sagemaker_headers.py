"""SageMaker's request headers, read in one place into ``request.SageMakerHeaders``.

``x-use-cache: 0`` (or, through SageMaker, which strips other headers,
``X-Amzn-SageMaker-Custom-Attributes: x-use-cache=0``) generates afresh, as the Inference API does.
``X-Amzn-SageMaker-Adapter-Identifier: <name>`` (SageMaker sends it for an adapter inference
component) runs the request with that registered LoRA adapter.
"""

from __future__ import annotations

from ..request import SageMakerHeaders

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
ADAPTER_IDENTIFIER = "X-Amzn-SageMaker-Adapter-Identifier"  # an adapter inference component's name
ADAPTER_ALIAS = "X-Amzn-SageMaker-Adapter-Alias"  # on POST /adapters: the name its answers use
SESSION_ID = "X-Amzn-SageMaker-Session-Id"
OFF = ("0", "false", "no")


def read_sagemaker_headers(headers) -> SageMakerHeaders:
    """The typed value of a request's headers (any mapping with a case-insensitive ``get``)."""
    attributes = custom_attributes(headers.get(CUSTOM_ATTRIBUTES, ""))
    return SageMakerHeaders(use_cache=wants_cache(headers.get("x-use-cache", ""), attributes),
                            custom_attributes=attributes, adapter=headers.get(ADAPTER_IDENTIFIER, "").strip() or None,
                            session_id=headers.get(SESSION_ID))


def adapter_alias(headers) -> str | None:
    """The alias SageMaker may send when it registers an adapter (``POST /adapters``)."""
    return headers.get(ADAPTER_ALIAS, "").strip() or None


def custom_attributes(value: str) -> tuple[tuple[str, str], ...]:
    """Every ``k=v`` pair of the comma-separated attributes, names and values stripped; an item
    without ``=`` is not a pair and is left out."""
    pairs = []
    for item in value.split(","):
        name, equals, text = item.partition("=")
        if equals and name.strip():
            pairs.append((name.strip(), text.strip()))
    return tuple(pairs)


def wants_cache(header: str, attributes: tuple[tuple[str, str], ...]) -> bool:
    """False when the client asked for a fresh generation, by header or by custom attribute."""
    if header.strip().lower() in OFF:
        return False
    return not any(name.lower() == "x-use-cache" and value.lower() in OFF for name, value in attributes)
