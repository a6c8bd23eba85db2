"""Is a trainer process still there? Used by the run lock (stale or not) and the run status.

A pid alone is not enough: a killed trainer whose parent has not reaped it is a zombie (kill(pid, 0)
still succeeds), and a pid can be reused by another process. On Linux /proc tells both apart (state
and start time); elsewhere the pid check is all there is.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this host); a zombie counts as existing."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # not ours, or not a pid this OS can ask about
        return True
    return True


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc; None where there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """This process's start time (Linux), recorded in the lock to tell a reused pid apart."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_running(pid: int, started: int | None = None) -> bool:
    """A live (not zombie) process with this pid, and the same one if `started` is known."""
    if not pid_alive(pid):
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): the pid check is all we have
    state, start = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return started is None or start == started


def this_host() -> str:
    return socket.gethostname()


def holder_running(holder: dict | None) -> bool:
    """Whether the process a lock names is still running (one on another host is assumed to be)."""
    if not holder or not isinstance(holder.get("pid"), int):
        return False
    if holder.get("host") not in (None, this_host()):
        return True  # cannot look at another machine's processes: trust its lock
    return process_running(holder["pid"], holder.get("started"))
