"""Worker processes die with the process that started them.

A pool worker whose parent was killed (``kill -9`` of the suite) would otherwise train on and store runs that no
suite is waiting for. :func:`die_with_parent` arranges for the worker to be killed (SIGKILL: no cleanup, and a
store transaction in flight is rolled back by SQLite) as soon as its parent is gone:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker when the parent exits;
* everywhere, a daemon thread that checks every :data:`POLL_S` seconds whether the parent is still the process
  that started the worker (an orphan is re-parented to init or a subreaper).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Kill this process when process ``parent_pid`` (its parent) exits; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        _linux_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _die()
    threading.Thread(target=_watch, args=(parent_pid,), name="die-with-parent", daemon=True).start()


def _linux_parent_death_signal() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no usable libc: the watchdog thread still works
        pass


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_S):
        if os.getppid() != parent_pid:
            _die()


def _die() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)
