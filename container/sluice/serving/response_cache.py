"""The Inference API's response cache: identical requests get the stored result.

Keyed on the normalised request (what determines the tokens, not how they are framed), so a
stream can replay a result first produced without streaming. Bounded (LRU), disabled with size
0, never stores errors. A client opts out per request (``http.sagemaker_headers``).
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict

from ..request import GenerateRequest


def cache_key(request: GenerateRequest, input_ids: tuple[int, ...], max_new_tokens: int) -> tuple:
    fields = asdict(request)
    for framing_only in ("stream", "details", "return_full_text", "inputs"):
        fields.pop(framing_only)
    return (input_ids, max_new_tokens, repr(sorted(fields.items())))


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
