"""Where stateful sessions live: one small interface, and a store in a directory that every
process of the server shares.

Several processes may answer one endpoint (``SAGEMAKER_MODEL_SERVER_WORKERS`` gunicorn workers,
or several HTTP processes in front of one engine), and SageMaker's sticky routing brings a
session back to the instance, not to the process that opened it. So the store is a directory
(on ``/dev/shm`` when it can be, like AWS's standards package): any process finds, records and
closes any session. A session is a directory named by its id holding ``expires`` (the moment it
lapses) and, after its first turn, ``transcript.json``. It exists exactly while ``expires`` does:
creating renames a finished directory into place and closing removes ``expires`` first, so a
reader never sees half a session and a late transcript write cannot bring a closed one back.

Ids are checked against SageMaker's pattern before they touch the file system, so a header can
never name a path outside the store.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("sluice.sessions")

# SageMaker's session id pattern (InvokeEndpoint's SessionId), at most 256 characters.
SESSION_ID = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_SESSION_ID = 256
EXPIRES, TRANSCRIPT = "expires", "transcript.json"


@dataclass(frozen=True)
class Transcript:
    """A session's conversation so far, as the model saw it: the last turn's prompt text and
    generated text, and the token ids of both (the generated ones as the model chose them)."""

    text: str
    ids: tuple[int, ...]
    add_special_tokens: bool  # how the prompt part was tokenised (a chat template holds BOS itself)


@dataclass(frozen=True)
class Session:
    id: str
    expires_at: float  # time.time() seconds
    transcript: Transcript | None = None


class UnknownSession(LookupError):
    """No such session: never opened, closed, or swept after expiring."""


class ExpiredSession(LookupError):
    """The session's lifetime is over (it is closed as it is found)."""


class SessionStore(Protocol):
    """What serving needs of a session store; ``DirectorySessionStore`` is the one there is."""

    def create(self, ttl_seconds: float) -> Session: ...

    def get(self, session_id: str) -> Session:
        """The live session, else ``UnknownSession`` / ``ExpiredSession``."""

    def record(self, session_id: str, transcript: Transcript) -> None:
        """Keep the session's latest turn; a closed session stays closed."""

    def close(self, session_id: str) -> None:
        """End the session, else ``UnknownSession`` / ``ExpiredSession``."""

    def count(self) -> int:
        """Live sessions (for /metrics)."""


def valid_id(session_id: str) -> bool:
    return len(session_id) <= MAX_SESSION_ID and SESSION_ID.match(session_id) is not None


def default_directory() -> str:
    """Shared memory when it is writable (fast, gone with the machine), else the temp directory."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def private_directory() -> str:
    """A fresh store directory for a process serving alone (tests, tools), removed at its exit."""
    path = tempfile.mkdtemp(prefix="sluice-sessions-", dir=default_directory())
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class DirectorySessionStore:
    def __init__(self, root: str):
        os.makedirs(root, exist_ok=True)
        self.root = root

    def create(self, ttl_seconds: float) -> Session:
        self.sweep()
        session = Session(str(uuid.uuid4()), time.time() + ttl_seconds)
        staging = tempfile.mkdtemp(prefix=".new-", dir=self.root)
        with open(os.path.join(staging, EXPIRES), "w") as out:
            out.write(repr(session.expires_at))
        os.rename(staging, self._path(session.id))
        return session

    def get(self, session_id: str) -> Session:
        expires_at = self._expiry(session_id)
        if time.time() > expires_at:
            self._remove(session_id)
            raise ExpiredSession(session_id)
        return Session(session_id, expires_at, self._transcript(session_id))

    def record(self, session_id: str, transcript: Transcript) -> None:
        body = json.dumps({"text": transcript.text, "ids": list(transcript.ids),
                           "add_special_tokens": transcript.add_special_tokens})
        directory = self._path(session_id)
        try:
            handle, staging = tempfile.mkstemp(prefix=".turn-", dir=directory)
            with os.fdopen(handle, "w") as out:
                out.write(body)
            if os.path.exists(os.path.join(directory, EXPIRES)):
                os.replace(staging, os.path.join(directory, TRANSCRIPT))
            else:
                os.unlink(staging)
        except FileNotFoundError:  # closed meanwhile: nothing to keep
            return

    def close(self, session_id: str) -> None:
        self.get(session_id)  # unknown or expired: the caller's 400
        self._remove(session_id)

    def count(self) -> int:
        return sum(1 for name in self._names() if os.path.exists(os.path.join(self.root, name, EXPIRES)))

    def sweep(self) -> None:
        """Remove expired sessions and the leftovers of interrupted ones (as the standards
        package does whenever a session is created)."""
        now = time.time()
        for name in self._names():
            try:
                if now > self._expiry(name):
                    self._remove(name)
            except UnknownSession:
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def _names(self) -> list[str]:
        try:
            return [name for name in os.listdir(self.root) if valid_id(name)]
        except FileNotFoundError:
            return []

    def _path(self, session_id: str) -> str:
        if not valid_id(session_id):
            raise UnknownSession(session_id)
        return os.path.join(self.root, session_id)

    def _expiry(self, session_id: str) -> float:
        try:
            with open(os.path.join(self._path(session_id), EXPIRES)) as source:
                return float(source.read())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise UnknownSession(session_id) from None

    def _transcript(self, session_id: str) -> Transcript | None:
        try:
            with open(os.path.join(self._path(session_id), TRANSCRIPT)) as source:
                data = json.load(source)
            return Transcript(data["text"], tuple(data["ids"]), bool(data["add_special_tokens"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):  # never half-written (os.replace); still, no 500
            log.warning("session %s: unreadable transcript ignored", session_id)
            return None

    def _remove(self, session_id: str) -> None:
        """``expires`` first: from that moment the session is gone for every process."""
        path = self._path(session_id)
        try:
            os.unlink(os.path.join(path, EXPIRES))
        except FileNotFoundError:
            raise UnknownSession(session_id) from None
        shutil.rmtree(path, ignore_errors=True)
