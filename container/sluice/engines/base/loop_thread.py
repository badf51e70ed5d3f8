"""The lifecycle every engine shares: one daemon thread owns the model and steps it; request
threads only queue work, flag cancellations and wake it. Kept apart from the stepping itself so
the native engine and the vLLM engine cannot drift in how they start, stop or report health."""

from __future__ import annotations

import threading


class LoopThread:
    """Subclasses implement ``_loop``, which returns once ``_stopped`` is set under ``_wakeup``."""

    def __init__(self, name: str):
        self._wakeup = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()

    def close(self, timeout: float) -> bool:
        """Stop the loop and wait for it, at most ``timeout`` seconds: the worker calls this before
        it exits, so no thread of this engine is inside torch when the process goes. True once
        the loop has ended."""
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """False once the loop has ended: the health check must then stop saying 200."""
        return self._thread.is_alive()

    def release(self, sequence) -> None:
        """``engines.base.interface``: a sequence whose text finished first; dropped at the next step."""
        sequence.release()

    def wake(self) -> None:
        """Let the loop notice a cancellation now rather than after its current step."""
        with self._wakeup:
            self._wakeup.notify()

    def cancel(self, sequence) -> None:
        """``GenerationEngine``: stop a sequence nobody reads any more, noticed at once."""
        sequence.cancel()
        self.wake()

    def healthy(self) -> bool:
        """``GenerationEngine``: the health check's answer, from the loop thread's state."""
        return self.alive
