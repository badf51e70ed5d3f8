"""When each simulated step ran: the server side of "the gap between steps".

The process that waits out the simulated GPU step appends one line per step, ``start end rows``
(wall-clock seconds, ``time.time()``, so the benchmark process can compare them with its own
clock), to the file named by ``SLUICE_GPU_SIM_STEP_LOG``. One ``O_APPEND`` write per step: a
few microseconds beside a step of 10 ms. The benchmark reads the steps of a round's window: the
gap from one step's end to the next one's start is the host time the GPU would have idled.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

STEP_LOG = "SLUICE_GPU_SIM_STEP_LOG"


class StepLog:
    """Appends one line per simulated step; a no-op without ``SLUICE_GPU_SIM_STEP_LOG``."""

    def __init__(self, path: str | None = None):
        path = path if path is not None else os.environ.get(STEP_LOG)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None

    def record(self, start: float, end: float, rows: int) -> None:
        if self._fd is not None:
            os.write(self._fd, b"%.6f %.6f %d\n" % (start, end, rows))


def read_steps(path: str | Path, since: float, until: float) -> list[tuple[float, float, int]]:
    """The steps that started inside ``[since, until]``, in order."""
    steps = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return steps
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # a line still being written
        start, end, rows = float(parts[0]), float(parts[1]), int(parts[2])
        if since <= start <= until:
            steps.append((start, end, rows))
    return steps


def summarize_steps(steps: list[tuple[float, float, int]], percentile) -> dict:
    """Step count, mean rows per step, and the gaps between consecutive steps (ms)."""
    gaps = [(b[0] - a[1]) * 1000 for a, b in zip(steps, steps[1:], strict=False)]
    waits = [(end - start) * 1000 for start, end, _ in steps]
    return {"steps": len(steps),
            "rows_mean": statistics.fmean(r for _, _, r in steps) if steps else 0.0,
            "step_ms_p50": percentile(waits, 50),
            "gap_ms_p50": percentile(gaps, 50), "gap_ms_p95": percentile(gaps, 95),
            "gap_ms_mean": statistics.fmean(gaps) if gaps else 0.0}
