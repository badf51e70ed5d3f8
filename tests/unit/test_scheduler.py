"""The scheduler's rules in-process, without torch: plain objects stand in for sequences."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sluice.engines.native.scheduler import Scheduler, SchedulerBudget, group_by_length


@dataclass
class Valid:
    input_length: int
    max_new_tokens: int = 10


@dataclass
class Seq:
    length: int
    new: int = 10
    cancelled: bool = False
    valid: Valid = field(init=False)

    def __post_init__(self):
        self.valid = Valid(self.length, self.new)


def scheduler(total=1000, prefill=100, rows=None, waiting=()) -> Scheduler:
    s = Scheduler(SchedulerBudget(total, prefill, rows))
    s.waiting.extend(waiting)
    return s


def test_admission_takes_arrivals_in_order_until_the_prefill_budget_is_spent():
    a, b, c = Seq(40), Seq(50), Seq(20)
    s = scheduler(prefill=100, waiting=[a, b, c])
    assert s.admit([]) == ([a, b], [])
    assert list(s.waiting) == [c]  # c would fit, but arrival order is kept: it waits for the next round


def test_a_prompt_longer_than_the_prefill_budget_is_admitted_alone_to_be_chunked():
    long, short = Seq(1500), Seq(10)
    s = scheduler(total=10_000, prefill=256, waiting=[long, short])
    assert s.admit([Seq(30)]) == ([long], [])
    assert s.admit([]) == ([short], [])


def test_the_kv_budget_counts_running_rows_prompt_plus_new_tokens():
    running = [Seq(100, 100)]
    s = scheduler(total=311, prefill=1000, waiting=[Seq(50, 60), Seq(1, 1)])
    admitted, _ = s.admit(running)
    assert [x.length for x in admitted] == [50]  # 200 + 110 = 310 fits; + 2 more would not
    assert len(s.waiting) == 1


def test_a_full_batch_admits_nobody_and_an_empty_one_admits_the_first_whatever_its_size():
    s = scheduler(total=100, prefill=10, rows=2, waiting=[Seq(500)])
    assert s.admit([Seq(1), Seq(1)]) == ([], [])
    assert [x.length for x in s.admit([])[0]] == [500]


def test_cancelled_waiters_are_handed_back_not_admitted():
    gone, kept = Seq(5, cancelled=True), Seq(6)
    s = scheduler(waiting=[gone, kept])
    assert s.admit([]) == ([kept], [gone])


def test_chunks_split_the_prefill_budget_between_the_rows():
    s = scheduler(prefill=256)
    assert s.chunk_stop(0, 1500, 1) == 256
    assert s.chunk_stop(1280, 1500, 1) == 1500
    assert s.chunk_stop(0, 300, 4) == 64
    assert s.chunk_stop(0, 10, 1000) == 1  # at least one column


@pytest.mark.parametrize("prefilling, running, last_was_prefill, can_fuse, expected", [
    # Both kinds of work and a runner that cannot fuse: chunks and decode steps alternate.
    (True, True, False, False, "prefill"), (True, True, True, False, "decode"),
    # A runner that can fuse: a chunk rides along with every decode step.
    (True, True, True, True, "fused"), (True, True, False, True, "fused"),
    # One kind of work alone runs alone, fused or not.
    (True, False, True, False, "prefill"), (True, False, False, True, "prefill"),
    (False, True, False, False, "decode"), (False, True, False, True, "decode"),
    (False, False, False, False, None),
])
def test_the_next_pass_fuses_a_chunk_with_the_decode_step_or_alternates(prefilling, running, last_was_prefill,
                                                                        can_fuse, expected):
    assert Scheduler.next_pass(prefilling, running, last_was_prefill, can_fuse) == expected


def test_groups_keep_left_padding_under_a_quarter_of_real_tokens():
    groups = group_by_length([Seq(100), Seq(10), Seq(90), Seq(12)])
    assert [[x.length for x in g] for g in groups] == [[10, 12], [90, 100]]
