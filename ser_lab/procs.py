"""Is a process alive, and is it still the one we started? One answer for the whole package.

A pid alone cannot say: after a process ends, the system may give its pid to an unrelated
process, which a bare `os.kill(pid, 0)` then takes for ours (and a SIGTERM meant for a trainer
would hit it). So whoever records a pid also records the process's start time
(`start_time(pid)`, psutil's `Process.create_time()`), and `is_alive(pid, started)` accepts the
pid only if a process with that pid AND that start time runs. Exited-but-unreaped processes
(zombies) count as ended. psutil answers the same on Linux, macOS and Windows, so none of this
depends on /proc.
"""

from __future__ import annotations

from typing import Any

import psutil

# create_time() is derived from the boot time and the process's start tick: the same process
# gives the same value to the microsecond in practice; allow a little rounding.
START_TOLERANCE_S = 0.01


def _valid(pid: Any) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0


def start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if there is none."""
    if not _valid(pid):
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None


def is_alive(pid: Any, started: float | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, when `started` is given, is the process that
    started then (so a reused pid is not taken for it)."""
    if not _valid(pid):
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and abs(proc.create_time() - float(started)) > START_TOLERANCE_S:
            return False
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return started is None  # it exists, but we cannot tell whether it is ours
    return True


def cmdline(pid: int) -> list[str] | None:
    """The command line of `pid`, or None if it cannot be read."""
    if not _valid(pid):
        return None
    try:
        return list(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None
