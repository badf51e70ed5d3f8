"""The client's per-request opt-out of the response cache, read from its headers.

``x-use-cache: 0`` (or, through SageMaker, which strips other headers,
``X-Amzn-SageMaker-Custom-Attributes: x-use-cache=0``) generates afresh, as the Inference API does.
"""

from __future__ import annotations

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def wants_cache(headers) -> bool:
    """False when the client asked for a fresh generation, by header or SageMaker custom attribute."""
    if headers.get("x-use-cache", "").strip().lower() in ("0", "false", "no"):
        return False
    for attribute in headers.get(CUSTOM_ATTRIBUTES, "").split(","):
        name, _, value = attribute.partition("=")
        if name.strip().lower() == "x-use-cache" and value.strip().lower() in ("0", "false", "no"):
            return False
    return True
