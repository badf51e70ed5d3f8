"""Prometheus metrics under TGI's names, so dashboards built for TGI keep working.

TGI's exporter writes counters without the ``_total`` suffix (``tgi_request_count 5``), which
``prometheus_client`` cannot produce; counters are rendered here, histograms and gauges come from
``prometheus_client``. TTFT, inter-token latency, cache hits and the caches' sizes against their
bounds are Sluice's additions.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import time
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

COUNTERS = {
    "tgi_request_count": "Requests received by the generate routes",
    "tgi_request_success": "Requests that completed",
    "tgi_request_failure": "Requests that failed, by error type",
    "sluice_request_cancelled": "Requests whose client went away before the end",
    "sluice_cache_hits": "Requests answered from the response cache",
}
# Counters the engine keeps (read at scrape time): metric name -> (stats field, help).
ENGINE_COUNTERS = {
    "sluice_prefix_cache_hits": ("prefix_cache_hits", "Prefills that reused a cached prompt prefix "
                                 "(the embedded engine's prefix cache, or vLLM's automatic prefix caching)"),
    "sluice_prefix_cache_hit_tokens": ("prefix_cache_hit_tokens", "Prompt tokens not prefilled thanks to it"),
}

# What the prefix cache (the embedded engine's; vLLM keeps prefixes inside its own KV cache, so
# these read 0 there) and the response cache hold, beside their bounds: name -> (where it is read,
# the field there, help). "engine": the engine's stats; "response": the response cache.
CACHE_GAUGES = {
    "sluice_prefix_cache_entries": ("engine", "prefix_cache_entries", "Cached prompt prefixes (embedded engine)"),
    "sluice_prefix_cache_tokens": ("engine", "prefix_cache_tokens", "Tokens of KV the prefix cache holds"),
    "sluice_prefix_cache_bytes": ("engine", "prefix_cache_bytes", "Bytes of KV tensors the prefix cache holds"),
    "sluice_prefix_cache_capacity_tokens": ("engine", "prefix_cache_capacity_tokens",
                                            "The prefix cache's bound in tokens (1/8 of the KV budget)"),
    "sluice_prefix_cache_pinned_tokens": ("engine", "prefix_cache_pinned_tokens",
                                          "Of the prefix cache's tokens, those stateful sessions keep "
                                          "(at most half its bound)"),
    "sluice_response_cache_entries": ("response", "entries", "Answers the response cache holds"),
    "sluice_response_cache_bytes": ("response", "bytes",
                                    "Bytes the response cache's answers and keys hold, as Python objects"),
    "sluice_response_cache_capacity_entries": ("response", "size",
                                               "The response cache's bound in entries (RESPONSE_CACHE_SIZE)"),
}


class StepHistogram:
    """A histogram fed a whole step's values in one call, written to ``/metrics`` exactly as
    ``prometheus_client``'s ``Histogram`` writes one (buckets, count, sum, created).

    The latencies of every token of a step are observed by the delivery thread while the next
    step runs; ``Histogram.observe`` takes two locks and walks the buckets for each value (about
    2 µs a token: a few per cent of the worker at 512 streams). Here a step costs one lock and a
    bisect per value. ``prometheus_client`` has no call that observes many values at once."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry):
        self._name, self._documentation = name, documentation
        self._bounds = tuple(float(bound) for bound in buckets) + (math.inf,)
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative: a value counts once
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_all((value,))

    def observe_all(self, values: Iterable[float]) -> None:
        bounds = self._bounds
        values = list(values)
        buckets = [bisect.bisect_left(bounds, value) for value in values]  # the first bound >= value
        total = math.fsum(values)
        with self._lock:
            counts = self._counts
            for bucket in buckets:
                counts[bucket] += 1
            self._sum += total

    def collect(self):
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = itertools.accumulate(counts)
        yield HistogramMetricFamily(self._name, self._documentation, sum_value=total, buckets=[
            (floatToGoString(bound), float(count)) for bound, count in zip(self._bounds, cumulative, strict=True)])
        yield GaugeMetricFamily(self._name + "_created", self._documentation, value=self._created)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self._counts: dict[tuple[str, tuple], float] = {}
        self._lock = threading.Lock()
        def h(name, doc, buckets=_LATENCY_BUCKETS):
            return Histogram(name, doc, registry=self.registry, buckets=buckets)

        self.request_duration = h("tgi_request_duration", "End-to-end request duration (s)")
        self.queue_duration = h("tgi_request_queue_duration", "Time waiting for a batch slot (s)")
        self.inference_duration = h("tgi_request_inference_duration", "Time from first forward pass to last token (s)")
        self.time_per_token = h("tgi_request_mean_time_per_token_duration", "Mean time per generated token (s)")
        self.generated_tokens = h("tgi_request_generated_tokens", "Generated tokens per request", _TOKEN_BUCKETS)
        self.input_length = h("tgi_request_input_length", "Prompt tokens per request", _TOKEN_BUCKETS)
        # Observed per token, a step's values at once (the delivery thread).
        self.ttft = StepHistogram("sluice_time_to_first_token_seconds", "Time from arrival to first token (s)",
                                  _LATENCY_BUCKETS, self.registry)
        self.inter_token = StepHistogram("sluice_inter_token_latency_seconds", "Time between consecutive tokens (s)",
                                         _LATENCY_BUCKETS, self.registry)
        self.queue_size = Gauge("tgi_queue_size", "Requests waiting for the batch", registry=self.registry)
        self.batch_size = Gauge("tgi_batch_current_size", "Sequences in the running batch", registry=self.registry)
        self.batch_tokens = Gauge("tgi_batch_current_max_tokens", "KV slots held by the running batch",
                                  registry=self.registry)
        self._read_stats: Callable[[], object] | None = None
        self.in_flight = Gauge("sluice_requests_in_flight", "Requests holding a concurrency slot",
                               registry=self.registry)
        self.cache_gauges = {name: Gauge(name, doc, registry=self.registry)
                             for name, (_, _, doc) in CACHE_GAUGES.items()}
        self.sessions_open = Gauge("sluice_sessions_open", "Stateful sessions open (all workers: the store is shared)",
                                   registry=self.registry)

    # The counters' names live here only; serving says what happened, not what to write.

    def count_request(self) -> None:
        self._count("tgi_request_count")

    def count_success(self, seconds: float) -> None:
        self._count("tgi_request_success")
        self.request_duration.observe(seconds)

    def count_failure(self, error_type: str) -> None:
        self._count("tgi_request_failure", {"err": error_type})

    def count_cancelled(self) -> None:
        self._count("sluice_request_cancelled")

    def count_cache_hit(self) -> None:
        self._count("sluice_cache_hits")

    def _count(self, name: str, labels: dict | None = None) -> None:
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def bind_gauges(self, read_stats: Callable[[], object], in_flight: Callable[[], int], cache,
                    sessions_open: Callable[[], int] = lambda: 0) -> None:
        """Gauges (and the engine's counters) read the engine's live state, the response cache
        and the session store at scrape time."""
        self._read_stats = read_stats
        self.sessions_open.set_function(sessions_open)
        self.queue_size.set_function(lambda: read_stats().queue_size)
        self.batch_size.set_function(lambda: read_stats().batch_size)
        self.batch_tokens.set_function(lambda: read_stats().batch_tokens)
        self.in_flight.set_function(in_flight)
        for name, gauge in self.cache_gauges.items():
            source, field, _ = CACHE_GAUGES[name]
            if source == "engine":
                gauge.set_function(lambda field=field: getattr(read_stats(), field, 0))
            else:
                gauge.set_function(lambda field=field: getattr(cache, field))

    def _engine_counter_lines(self) -> list[str]:
        stats = self._read_stats() if self._read_stats else None
        lines = []
        for name, (field, doc) in ENGINE_COUNTERS.items():
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter", f"{name} {getattr(stats, field, 0):g}"]
        return lines

    def render(self) -> bytes:
        lines = []
        with self._lock:
            counts = dict(self._counts)
        for name, doc in COUNTERS.items():
            lines += [f"# HELP {name} {doc}", f"# TYPE {name} counter"]
            samples = {labels: v for (n, labels), v in counts.items() if n == name} or {(): 0}
            for labels, value in sorted(samples.items()):
                label_text = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
        lines += self._engine_counter_lines()
        return ("\n".join(lines) + "\n").encode() + generate_latest(self.registry)
