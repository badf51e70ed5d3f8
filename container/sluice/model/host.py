"""The model's life in one worker process: load in the background, then serve.

The port opens at once and ``/ping`` answers 503 until the model is ready, 200 after; a failed
load never turns healthy: it logs one clear line and ends the process, non-zero. A successful one
calls ``on_ready`` once, so a person watching the terminal knows when to send a request.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Callable

from ..config import Config

log = logging.getLogger("sluice.host")


def freeze_loaded_heap() -> int:
    """Move every object loading made (torch, transformers, vLLM, the model's Python side) into
    the permanent generation, which Python's collections skip; the number of objects frozen.

    Python's full collection walks every object in its oldest generation while holding the GIL.
    With vLLM loaded a worker holds about 700,000 of them, and one such collection stalled the
    worker for about 420 ms in the middle of serving 512 streams (once per 9-second run, in the
    simulated-GPU benchmark): no token delivered, no request admitted. vLLM's own API server and
    engine core freeze their start-up heap for the same reason (``vllm.utils.gc_utils``). Cyclic
    garbage is collected first, so nothing that is already garbage is kept."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class ModelHost:
    def __init__(self, config: Config, build: Callable[[Config], object],
                 on_failure: Callable[[BaseException], None], on_ready: Callable[[], None]):
        """``build(config)`` loads everything and returns a ``bootstrap.Serving`` (slow, in a thread)."""
        self.config = config
        self._build = build
        self._on_failure = on_failure
        self._on_ready = on_ready
        self.service = None
        self.compute_type: str | None = None  # the x-compute-type header, known with the device
        self.error: BaseException | None = None
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._load, name="sluice-loader", daemon=True)

    def start(self) -> "ModelHost":
        self._thread.start()
        return self

    def close(self, timeout: float) -> None:
        """Stop the engine before the process exits. A load still running is left to the exit:
        it cannot be interrupted, and the worker ends without finalizing the interpreter."""
        service = self.service
        if service is not None and not service.close(timeout):
            log.warning("the engine did not stop within %.1f s; exiting anyway", timeout)

    def _load(self) -> None:
        try:
            serving = self._build(self.config)
        except BaseException as error:  # any failure must be loud and final, never a healthy ping
            self.error = error
            log.error("model loading failed: %s: %s", type(error).__name__, error)
            self._on_failure(error)
            return
        self.compute_type = serving.compute_type
        frozen = freeze_loaded_heap()
        self.service = serving.service  # last: a service means ready
        log.info("model ready after %.1f s (%d loaded objects left out of garbage collection)",
                 time.monotonic() - self.started_at, frozen)
        self._on_ready()
