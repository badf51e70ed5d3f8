"""The simulated GPU's timeline (bench/gpu_sim/gpu_clock): with the host's work beside the
GPU's step (vLLM's asynchronous scheduling, as on CUDA) a busy batch's steps run back to back
until the host's work outgrows a step; serial, every step waits its whole length after launch."""

from __future__ import annotations

import pytest

from bench.gpu_sim.gpu_clock import GpuClock

S = 0.010


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds

    def host_work(self, seconds: float) -> None:
        self.t += seconds


def _clock(overlapped: bool) -> tuple[GpuClock, FakeTime]:
    fake = FakeTime()
    return GpuClock(S, overlapped, now=fake.now, sleep=fake.sleep), fake


def test_overlapped_steps_of_a_busy_batch_run_back_to_back_while_the_host_keeps_up():
    clock, fake = _clock(overlapped=True)
    first = clock.run_step(continuing=False)
    assert first == pytest.approx((100.0, 100.010))
    fake.host_work(0.003)  # scheduling and output processing between two steps
    second = clock.run_step(continuing=True)
    assert second == pytest.approx((100.010, 100.020))  # the GPU never waited
    assert fake.t == pytest.approx(100.020)


def test_overlapped_host_work_longer_than_a_step_idles_the_gpu_by_the_excess():
    clock, fake = _clock(overlapped=True)
    clock.run_step(continuing=False)
    fake.host_work(0.014)
    start, end = clock.run_step(continuing=True)
    assert start - 100.010 == pytest.approx(0.004)  # the GPU idled 4 ms of the host's 14
    assert end == pytest.approx(fake.t)  # the step had already run: no wait


def test_a_batch_after_an_idle_gpu_waits_a_whole_step_from_its_launch():
    clock, fake = _clock(overlapped=True)
    clock.run_step(continuing=False)
    fake.host_work(2.0)  # no requests for two seconds
    assert clock.run_step(continuing=False) == pytest.approx((102.010, 102.020))


def test_serial_steps_add_the_hosts_work_to_every_step():
    clock, fake = _clock(overlapped=False)
    clock.run_step(continuing=False)
    fake.host_work(0.003)
    assert clock.run_step(continuing=True) == pytest.approx((100.013, 100.023))
