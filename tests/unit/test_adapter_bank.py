"""The native engine's adapter slots, with plain objects for weights: at most ``capacity`` loaded,
pinned ones never evicted (and at most ``capacity - 1`` pinned), the least recently used other
one evicted first, never one the running rows use; an evicted adapter is read again on its next use."""

from __future__ import annotations

import pytest

from sluice.engines.native.lora_bank import AdapterBank, AdapterGone
from sluice.errors import ConflictError
from sluice.request import AdapterRef, AdapterSpec


def spec(uid: int, pinned: bool = False) -> AdapterSpec:
    return AdapterSpec(AdapterRef(f"a{uid}", uid), f"/adapters/a{uid}", pinned=pinned)


class Disk:
    """What ``load`` reads: counts reads per adapter, so a test sees evictions reloaded."""

    def __init__(self):
        self.reads: list[int] = []

    def __call__(self, registered: AdapterSpec) -> str:
        self.reads.append(registered.ref.uid)
        return f"weights-{registered.ref.uid}"


def bank_with(capacity: int, *uids: int, disk: Disk | None = None) -> AdapterBank:
    bank = AdapterBank(capacity, disk or Disk())
    for uid in uids:
        assert bank.register(spec(uid), f"weights-{uid}")
    return bank


def test_registered_adapters_load_until_full_then_the_least_recently_used_makes_room():
    bank = bank_with(2, 1, 2)
    assert bank.reserve(1, busy=set())  # a1 used: a2 is now the least recently used
    assert bank.register(spec(3), "weights-3")
    assert bank.loaded_uids() == [1, 3]


def test_an_evicted_adapter_is_read_again_from_its_directory_on_next_use():
    disk = Disk()
    bank = bank_with(1, 1, 2, disk=disk)  # a2's registration evicted a1
    assert bank.loaded_uids() == [2] and disk.reads == []
    assert bank.reserve(1, busy=set())
    assert bank.take(1) == "weights-1" and disk.reads == [1]
    assert bank.take(1) == "weights-1" and disk.reads == [1]  # loaded now: no second read
    assert bank.loaded_uids() == [1]


def test_an_adapter_the_running_rows_use_is_never_evicted_so_a_newcomer_waits():
    bank = bank_with(2, 1, 2)
    assert bank.register(spec(3), None) is False  # registered, not loaded
    assert not bank.reserve(3, busy={1, 2})  # both slots busy: wait for a row to finish
    assert bank.reserve(3, busy={1})  # a2 is free: it goes
    assert bank.loaded_uids() == [1] and not bank.is_loaded(3)  # reserved, read at take
    assert bank.take(3) == "weights-3" and bank.loaded_uids() == [1, 3]


def test_pinned_adapters_stay_loaded_and_one_slot_always_turns_over():
    bank = AdapterBank(3, Disk())
    assert bank.register(spec(1, pinned=True), "weights-1")
    assert bank.register(spec(2, pinned=True), "weights-2")
    with pytest.raises(ConflictError, match="at most 2 of the 3 slots"):
        bank.register(spec(3, pinned=True), "weights-3")
    for uid in (4, 5, 6):
        assert bank.register(spec(uid), f"weights-{uid}")
        assert bank.reserve(uid, busy=set())
    assert bank.loaded_uids() == [1, 2, 6]


def test_preloading_into_a_full_bank_of_busy_adapters_leaves_the_newcomer_unloaded():
    bank = bank_with(1, 1)
    assert bank.reserve(1, busy={1})  # the engine saw a1 running at its last admission
    assert bank.register(spec(2), "weights-2") is False
    assert bank.loaded_uids() == [1]


def test_an_adapter_unregistered_after_validation_fails_its_request_at_take():
    bank = bank_with(2, 1)
    bank.unregister(1)
    assert bank.reserve(1, busy=set())  # let through: it fails at take, with a clear error
    with pytest.raises(AdapterGone):
        bank.take(1)
    assert bank.loaded_uids() == []


def test_a_failed_reload_frees_its_reserved_slot():
    def broken(registered):
        raise OSError("gone")

    bank = AdapterBank(1, broken)
    bank.register(spec(1), None)
    assert bank.reserve(1, busy=set())
    with pytest.raises(OSError):
        bank.take(1)
    bank.release_reservation(1)
    assert bank.register(spec(2), "weights-2") and bank.loaded_uids() == [2]
