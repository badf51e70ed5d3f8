"""SageMaker's stateful sessions, as AWS's model-hosting-container-standards package answers them
(the package vLLM's SageMaker entrypoint and AWS's vLLM image use).

On with ``SAGEMAKER_ENABLE_STATEFUL_SESSIONS``. ``POST /invocations`` with the body
``{"requestType": "NEW_SESSION"}`` opens one (200, ``Session <id> created``, the id and its
expiry in ``X-Amzn-SageMaker-New-Session-Id`` and, since AWS's guide names that header,
``X-Amzn-SageMaker-Session-Id``); a request carrying ``X-Amzn-SageMaker-Session-Id: <id>`` runs in
it; ``{"requestType": "CLOSE"}`` with the header closes it (200, ``Session <id> closed``,
``X-Amzn-SageMaker-Closed-Session-Id``). An unknown or expired id is a 400 (``Bad request:
session not found: <id>``), as is a session header or a session body while sessions are off
(``Invalid payload. stateful sessions not enabled``). Where the standards package lets an
expired id through as if no session were named, Sluice says so with a 400 (``session
expired``): the client asked for a session it no longer has.

What a session buys: the engine keeps its conversation's KV pinned in the prefix cache (the
embedded engine; see ``engines.native.prefix_cache``), and the server remembers the last turn's
token ids (``transcripts``), so turn n+1 prefills only its new message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import SessionError, SessionFailedError
from ..request import SessionPin, ValidRequest
from ..text.events import TokenEvent
from .session_store import ExpiredSession, Session, SessionStore, UnknownSession
from .transcripts import transcript_after

log = logging.getLogger("sluice.sessions")

NEW_SESSION, CLOSE = "NEW_SESSION", "CLOSE"
REQUEST_TYPE = "requestType"
SESSION_ID_HEADER = "X-Amzn-SageMaker-Session-Id"
NEW_SESSION_ID_HEADER = "X-Amzn-SageMaker-New-Session-Id"
CLOSED_SESSION_ID_HEADER = "X-Amzn-SageMaker-Closed-Session-Id"
DISABLED = "Invalid payload. stateful sessions not enabled"
HEADER_WHILE_DISABLED = f"{DISABLED}, {SESSION_ID_HEADER} header not supported"


def session_request_type(payload) -> str | None:
    """``NEW_SESSION`` or ``CLOSE`` for a session-management body, None for any other body; a
    body with ``requestType`` that is not exactly one of them is a 400 (the standards package
    forbids other fields beside it)."""
    if not isinstance(payload, dict) or REQUEST_TYPE not in payload:
        return None
    kind = payload[REQUEST_TYPE]
    if kind not in (NEW_SESSION, CLOSE):
        raise SessionError(f"Bad request: requestType must be {NEW_SESSION} or {CLOSE}. Given: {kind!r}")
    extra = sorted(set(payload) - {REQUEST_TYPE})
    if extra:
        raise SessionError(f"Bad request: a session request holds requestType only. Given also: {', '.join(extra)}")
    return kind


def expiry_text(expires_at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))


@dataclass(frozen=True)
class SessionAnswer:
    """A session request's reply: SageMaker reads the headers, the text is the standards package's."""

    text: str
    headers: dict[str, str]


class Sessions:
    """The sessions of one server over its store; ``store=None``: sessions are off, and every
    session header or body is refused. ``release`` tells the engine a session is over."""

    def __init__(self, store: SessionStore | None, ttl_seconds: float = 1200.0,
                 release: Callable[[str], None] = lambda session_id: None):
        self.store, self.ttl_seconds, self.release = store, ttl_seconds, release

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def answer(self, kind: str, session_id: str | None) -> SessionAnswer:
        """Open (the header is ignored: SageMaker may send ``NEW_SESSION`` in it) or close."""
        if self.store is None:
            raise SessionError(DISABLED)
        if kind == NEW_SESSION:
            return self._open()
        if not session_id:
            raise SessionError("Session ID is required in request headers to close a session")
        self._lookup(lambda: self.store.close(session_id), session_id)
        self.release(session_id)
        log.info("session %s closed", session_id)
        return SessionAnswer(f"Session {session_id} closed", {CLOSED_SESSION_ID_HEADER: session_id})

    def _open(self) -> SessionAnswer:
        try:
            session = self.store.create(self.ttl_seconds)
        except OSError as error:
            log.exception("creating a session failed")
            raise SessionFailedError(f"Failed to create session: {error.strerror or error}") from None
        value = f"{session.id}; Expires={expiry_text(session.expires_at)}"
        log.info("session %s created", session.id)
        return SessionAnswer(f"Session {session.id} created",
                             {NEW_SESSION_ID_HEADER: value, SESSION_ID_HEADER: value})

    def resolve(self, session_id: str | None) -> Session | None:
        """The live session an inference request names, None when it names none (an empty
        header, or SageMaker's ``NEW_SESSION`` placeholder, name none, as in the standards
        package; with sessions off any session header is refused)."""
        if session_id is None:
            return None
        if self.store is None:
            raise SessionError(HEADER_WHILE_DISABLED)
        if session_id in ("", NEW_SESSION):
            return None
        return self._lookup(lambda: self.store.get(session_id), session_id)

    def _lookup(self, action, session_id: str):
        try:
            return action()
        except UnknownSession:
            raise SessionError(f"Bad request: session not found: {session_id}") from None
        except ExpiredSession:
            self.release(session_id)
            raise SessionError(f"Bad request: session expired: {session_id}") from None
        except OSError as error:
            log.exception("reading session %s failed", session_id)
            raise SessionFailedError(f"Failed to read session: {error.strerror or error}") from None

    @staticmethod
    def pin(session: Session | None) -> SessionPin | None:
        """What the engine learns of the session a request runs in."""
        return None if session is None else SessionPin(session.id, session.expires_at)

    def record(self, session: Session | None, valid: ValidRequest, run: list[TokenEvent],
               add_special_tokens: bool) -> None:
        """Remember the turn's conversation for the session's next turn (best effort: a lost
        transcript only costs that turn a longer prefill)."""
        if session is None or self.store is None:
            return
        transcript = transcript_after(valid, run, add_special_tokens)
        if transcript is None:
            return
        try:
            self.store.record(session.id, transcript)
        except OSError:
            log.exception("session %s: keeping the transcript failed", session.id)

    def count(self) -> int:
        return self.store.count() if self.store is not None else 0
