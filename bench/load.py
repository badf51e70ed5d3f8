"""Closed-loop streaming load: N requests through C client threads, with a health pinger alongside.

Each client thread takes the next prompt as soon as its previous stream ends, so exactly C streams
are open until the queue drains, the way a fixed pool of users behaves. A separate thread probes
the health route every ``ping_interval`` seconds for the whole run: its p99 is the "health under
load" figure (a load balancer that times out marks the instance unhealthy).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from bench.clients import StreamTiming, get_latency


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile (``q`` in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Pinger:
    """Background GETs of a health route; ``latencies`` holds seconds, ``failures`` counts misses."""

    def __init__(self, url: str, path: str, interval: float = 0.05):
        self.url, self.path, self.interval = url, path, interval
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pinger", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            latency = get_latency(self.url, self.path)
            if latency is None:
                self.failures += 1
            else:
                self.latencies.append(latency)
            self._stop.wait(self.interval)

    def __enter__(self) -> "Pinger":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_load(send: Callable[[str], StreamTiming], prompts: list[str], concurrency: int,
             ping_url: str, ping_path: str) -> dict:
    """Streams every prompt through ``concurrency`` threads; returns the level's figures."""
    with Pinger(ping_url, ping_path) as pinger, ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        timings = list(pool.map(send, prompts))
        elapsed = time.perf_counter() - started
    return summarize(timings, elapsed, concurrency, pinger)


def summarize(timings: list[StreamTiming], elapsed: float, concurrency: int, pinger: Pinger) -> dict:
    errors = [t.error for t in timings if t.error]
    good = [t for t in timings if not t.error and t.event_times]
    generated = sum(t.generated_tokens for t in good)
    ttfts = [t.ttft for t in good]
    gaps = [g for t in good for g in t.gaps]
    # Mean time per output token after the first, per request: robust when a server sends
    # several tokens in one chunk (the gaps then understate nothing but the count of events).
    tpot = [(t.event_times[-1] - t.event_times[0]) / (t.generated_tokens - 1)
            for t in good if t.generated_tokens > 1]
    return {
        "concurrency": concurrency,
        "requests": len(timings),
        "errors": len(errors),
        "error_samples": errors[:3],
        "generated_tokens": generated,
        "min_tokens_per_request": min((t.generated_tokens for t in good), default=0),
        "wall_s": elapsed,
        "tokens_per_s": generated / elapsed if elapsed > 0 else 0.0,
        "ttft_s": ttfts,
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "itl_p50_s": percentile(gaps, 50),
        "itl_p95_s": percentile(gaps, 95),
        "tpot_mean_s": statistics.fmean(tpot) if tpot else 0.0,
        "events_per_request": statistics.fmean(len(t.event_times) for t in good) if good else 0.0,
        "ping_count": len(pinger.latencies),
        "ping_failures": pinger.failures,
        "ping_p50_s": percentile(pinger.latencies, 50),
        "ping_p99_s": percentile(pinger.latencies, 99),
        "ping_max_s": max(pinger.latencies, default=0.0),
    }
