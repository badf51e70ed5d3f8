"""Register and unregister a LoRA adapter in a container, as SageMaker does for adapter components.

SageMaker turns ``CreateInferenceComponent`` with ``BaseInferenceComponentName`` and
``ArtifactUrl`` into ``POST /adapters`` on the base component's container (``name``: the adapter
component's name, ``src``: the directory it downloaded the artifact to), and
``DeleteInferenceComponent`` into ``DELETE /adapters/{name}``. Requests for the adapter then carry
``X-Amzn-SageMaker-Adapter-Identifier: <name>``.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote, urlsplit

ADAPTER_IDENTIFIER_HEADER = "X-Amzn-SageMaker-Adapter-Identifier"
INFERENCE_COMPONENT_HEADER = "X-Amzn-SageMaker-Inference-Component"
TIMEOUT_SECONDS = 120.0


class AdapterRequestFailed(Exception):
    """The container refused or could not take the request; ``status`` 0 when unreachable."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}" if status else message)
        self.status, self.message = status, message


def _call(container_url: str, method: str, path: str, body: dict | None = None) -> str:
    parts = urlsplit(container_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as error:
        raise AdapterRequestFailed(0, f"could not reach the container at {container_url}: {error}") from error
    finally:
        conn.close()
    if response.status >= 300:
        raise AdapterRequestFailed(response.status, text)
    return text


def register_adapter(container_url: str, name: str, src: str) -> str:
    """``POST /adapters`` with ``{"name", "src"}``; returns the container's answer."""
    return _call(container_url, "POST", "/adapters", {"name": name, "src": src})


def unregister_adapter(container_url: str, name: str) -> str:
    """``DELETE /adapters/{name}``; returns the container's answer."""
    return _call(container_url, "DELETE", f"/adapters/{quote(name, safe='')}")
