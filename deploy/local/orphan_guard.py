"""Stop a local container when the process that started it dies, however it dies.

The container runs in its own session, so Ctrl-C in a terminal or a notebook reaches only its
parent, which stops it gracefully. But a parent killed with SIGKILL, or one that exits without
stopping it, would leave it running with no owner, holding its port and memory. So a small
watchdog process (this file, run as a script: standard library only) holds the read end of a pipe
whose write end only the parent holds. The kernel closes that end when the parent dies, for any
reason; the watchdog then stops the container as SageMaker does: SIGTERM, then SIGKILL of its
whole process group after the grace period (or ``docker stop`` for a container run by Docker). A
parent that stops the container itself first writes one byte, and the watchdog leaves quietly.

Linux's ``PR_SET_PDEATHSIG`` would be shorter, but it fires when the *thread* that started the
child ends (a notebook or server may start the endpoint from a worker thread), it is Linux-only,
and it cannot stop a Docker container, whose ``docker run`` client is not the container.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

DEFAULT_GRACE_SECONDS = 30.0  # SageMaker's SIGTERM -> SIGKILL window
POLL_SECONDS = 0.1
RELEASE = b"r"


class OrphanGuard:
    """The parent's end of a watchdog: ``release()`` when the container was stopped on purpose."""

    def __init__(self, target: list[str], grace: float = DEFAULT_GRACE_SECONDS):
        """``target``: ``["--pgid", PID]`` or ``["--", *stop_command]`` (see `main`)."""
        read_end, self._write_end = os.pipe()  # both ends close-on-exec: only the watchdog gets one
        try:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--grace", str(grace), *target],
                stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # a terminal's Ctrl-C is the parent's to handle, not ours
        finally:
            os.close(read_end)

    @classmethod
    def for_process_group(cls, pgid: int, grace: float = DEFAULT_GRACE_SECONDS) -> "OrphanGuard":
        return cls(["--pgid", str(pgid)], grace)

    @classmethod
    def for_command(cls, stop_command: list[str], grace: float = DEFAULT_GRACE_SECONDS) -> "OrphanGuard":
        return cls(["--", *stop_command], grace)

    def release(self) -> None:
        """The container is stopped (or gone): the watchdog exits without touching anything."""
        if self._write_end is None:
            return
        try:
            os.write(self._write_end, RELEASE)
        except OSError:  # the watchdog is already gone
            pass
        os.close(self._write_end)
        self._write_end = None
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def running(pid: int) -> bool:
    """Whether ``pid`` runs; an exited process waiting for its new parent to reap it does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def stop_process_group(pgid: int, grace: float) -> None:
    """SIGTERM to the group's leader (gunicorn's master stops its workers); once it has exited, or
    after ``grace``, SIGKILL to whatever is left of the group."""
    try:
        os.kill(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while running(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="stop a container when its parent dies (read stdin to EOF)")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_SECONDS)
    parser.add_argument("--pgid", type=int, help="the container's process group (its leader gets SIGTERM)")
    parser.add_argument("stop_command", nargs="*", help="after --: the command that stops the container")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message = os.read(sys.stdin.fileno(), 1)  # blocks until the parent releases us or dies
    if message == RELEASE:
        return 0
    if args.pgid:
        stop_process_group(args.pgid, args.grace)
    elif args.stop_command:
        subprocess.run(args.stop_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=args.grace + 30, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
