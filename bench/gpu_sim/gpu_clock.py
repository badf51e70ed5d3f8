"""When a simulated GPU step starts and ends, given when the host launched it.

Two ways a serving engine's host work can sit beside the GPU's steps (``SLUICE_GPU_SIM_OVERLAP``):

- **overlapped** (``1``, the benchmark's default): vLLM's asynchronous scheduling, its default on
  CUDA. The engine core schedules and prepares step n + 1 while the GPU runs step n, and takes
  step n's tokens while step n + 1 runs; the GPU idles only when the host's work for one step
  takes longer than a step. Its host work still runs, in full and for real, in the same thread
  order; only the GPU's step is shortened by the host time it hid, so a step of a busy batch
  ends at ``max(previous end + S, launch)``. A batch carrying no request over from the previous
  step found the GPU idle, and its step takes S from its launch.
- **serial** (``0``): the engine core's loop as vLLM's CPU build runs it (no asynchronous
  scheduling there; ``--no-async-scheduling`` on CUDA): every step waits S from its launch, so
  the host's work between two steps is added to every step.

The step log records each step's start and end on the GPU's clock, so the gap between two steps
is the time the GPU idled, waiting for the host.
"""

from __future__ import annotations

import os
import time

OVERLAP = "SLUICE_GPU_SIM_OVERLAP"


def overlapped_from_environ() -> bool:
    return os.environ.get(OVERLAP, "1") != "0"


class GpuClock:
    """The simulated GPU's timeline, one step after another (``now`` and ``sleep`` as ``time``'s)."""

    def __init__(self, step_s: float, overlapped: bool, now=time.time, sleep=time.sleep):
        self.step_s = step_s
        self.overlapped = overlapped
        self._now, self._sleep = now, sleep
        self._last_end = 0.0

    def run_step(self, continuing: bool) -> tuple[float, float]:
        """Waits until the step launched now ends; its ``(start, end)`` on the wall clock.
        ``continuing``: the batch carries requests over from the previous step."""
        launched = self._now()
        start = launched
        if self.overlapped and continuing:
            # Launched while the previous step ran, as far back as one step: the host's work
            # between two steps is hidden up to a step's length, and the rest idles the GPU.
            start = max(self._last_end, launched - self.step_s)
        end = start + self.step_s
        self._sleep(max(0.0, end - self._now()))
        self._last_end = end
        return start, end
