"""The session store's rules: every process sharing its directory sees the same sessions, an id
never names a path outside it, and a closed or expired session stays gone (through the real
server: server/test_sessions)."""

from __future__ import annotations

import os
import time

import pytest

from sluice.serving.session_store import (
    SESSION_ID,
    DirectorySessionStore,
    ExpiredSession,
    Transcript,
    UnknownSession,
)


def test_a_session_opened_by_one_process_is_found_recorded_and_closed_by_another(tmp_path):
    opener, other = DirectorySessionStore(str(tmp_path)), DirectorySessionStore(str(tmp_path))
    session = opener.create(60)
    assert SESSION_ID.match(session.id) and len(session.id) <= 256
    assert other.get(session.id).transcript is None
    other.record(session.id, Transcript("hello", (1, 2, 3), True))
    assert opener.get(session.id).transcript == Transcript("hello", (1, 2, 3), True)
    assert opener.count() == 1
    other.close(session.id)
    with pytest.raises(UnknownSession):
        opener.get(session.id)
    opener.record(session.id, Transcript("late", (4,), True))  # a turn ending after the close
    with pytest.raises(UnknownSession):
        opener.get(session.id)
    assert opener.count() == 0 and os.listdir(tmp_path) == []


@pytest.mark.parametrize("session_id", ["../etc", "a/b", "", "-a", "a-", "x" * 257, "NEW_SESSION", "a b"])
def test_an_id_that_is_not_sagemakers_pattern_is_unknown_and_touches_no_path(tmp_path, session_id):
    store = DirectorySessionStore(str(tmp_path / "store"))
    with pytest.raises(UnknownSession):
        store.get(session_id)
    with pytest.raises(UnknownSession):
        store.close(session_id)


def test_an_expired_session_is_refused_as_expired_once_then_unknown(tmp_path):
    store = DirectorySessionStore(str(tmp_path))
    session = store.create(0.05)
    time.sleep(0.1)
    with pytest.raises(ExpiredSession):
        store.get(session.id)
    with pytest.raises(UnknownSession):
        store.get(session.id)


def test_creating_a_session_sweeps_the_expired_ones(tmp_path):
    store = DirectorySessionStore(str(tmp_path))
    old = store.create(0.05)
    time.sleep(0.1)
    fresh = store.create(60)
    assert sorted(os.listdir(tmp_path)) == [fresh.id] and old.id != fresh.id
