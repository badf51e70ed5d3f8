"""``StepHistogram`` (serving/metrics): the delivery thread observes a whole step's token
latencies in one call, and ``/metrics`` must read exactly as ``prometheus_client``'s ``Histogram``
would have written the same values one by one (dashboards parse these lines)."""

from __future__ import annotations

import random
import re

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sluice.serving.metrics import _LATENCY_BUCKETS, Metrics, StepHistogram


def lines(registry: CollectorRegistry) -> list[str]:
    text = re.sub(r"_created \S+", "_created <time>", generate_latest(registry).decode())
    return text.splitlines()


def test_a_steps_values_render_as_prometheus_clients_histogram_observing_them_one_by_one():
    rng = random.Random(3)
    values = [rng.expovariate(30) for _ in range(2000)] + [0.0, 0.005, 0.01, 2.5, 120, 121]  # bounds are inclusive
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram("latency_seconds", "help", registry=theirs_registry, buckets=_LATENCY_BUCKETS)
    ours = StepHistogram("latency_seconds", "help", _LATENCY_BUCKETS, ours_registry)
    for value in values:
        theirs.observe(value)
    for start in range(0, len(values), 256):  # steps of 256 streams
        ours.observe_all(values[start:start + 256])
    expected, got = lines(theirs_registry), lines(ours_registry)
    assert [line for line in got if "_sum" not in line] == [line for line in expected if "_sum" not in line]
    (sum_line,) = [line for line in got if line.startswith("latency_seconds_sum")]
    assert float(sum_line.split()[1]) == pytest.approx(sum(values), rel=1e-12)


def test_the_servers_token_latency_histograms_are_step_histograms_in_its_registry():
    metrics = Metrics()
    metrics.ttft.observe_all([0.2, 0.3])
    metrics.inter_token.observe(0.02)
    text = generate_latest(metrics.registry).decode()
    assert 'sluice_time_to_first_token_seconds_bucket{le="0.25"} 1.0' in text
    assert "sluice_time_to_first_token_seconds_count 2.0" in text
    assert 'sluice_inter_token_latency_seconds_bucket{le="0.025"} 1.0' in text
