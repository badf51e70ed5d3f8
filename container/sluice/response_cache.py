"""The Inference API's response cache: identical requests get the stored result.

Keyed on the normalised request (what determines the tokens, not how they are framed), so a
stream can replay a result first produced without streaming. Bounded (LRU), disabled with size
0, never stores errors. A request with ``x-use-cache: 0`` (or, through SageMaker, which strips
other headers, ``X-Amzn-SageMaker-Custom-Attributes: x-use-cache=0``) generates afresh.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict

from .schema import GenerateRequest

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def cache_key(request: GenerateRequest, input_ids: tuple[int, ...], max_new_tokens: int) -> tuple:
    fields = asdict(request)
    for framing_only in ("stream", "details", "return_full_text", "inputs"):
        fields.pop(framing_only)
    return (input_ids, max_new_tokens, repr(sorted(fields.items())))


def wants_cache(headers) -> bool:
    """False when the client asked for a fresh generation, by header or SageMaker custom attribute."""
    if headers.get("x-use-cache", "").strip().lower() in ("0", "false", "no"):
        return False
    for attribute in headers.get(CUSTOM_ATTRIBUTES, "").split(","):
        name, _, value = attribute.partition("=")
        if name.strip().lower() == "x-use-cache" and value.strip().lower() in ("0", "false", "no"):
            return False
    return True


class ResponseCache:
    def __init__(self, size: int):
        self.size = size
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def get(self, key):
        if not self.enabled:
            return None
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, runs) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._entries[key] = runs
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
