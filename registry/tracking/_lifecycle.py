"""Process-wide hooks that end runs properly: SIGTERM, interpreter exit.

SIGINT needs nothing here: Python raises KeyboardInterrupt, which ``Run.__exit__`` sees.
SIGTERM's default action would kill the process without unwinding, so while a run is active
it is turned into ``SystemExit(143)``: ``with`` blocks unwind, the run flushes and is marked
KILLED. A handler the program installed itself is called instead, after the run is told.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from typing import Any

__all__ = ["register", "unregister"]

_active: list[Any] = []
_previous: dict[int, Any] = {}
_lock = threading.Lock()
_installed = False


def register(run: Any) -> None:
    """Track an active run so a signal or interpreter exit ends it."""
    with _lock:
        _active.append(run)
        _install()


def unregister(run: Any) -> None:
    with _lock:
        if run in _active:
            _active.remove(run)


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_IGN:
            _previous[signal.SIGTERM] = current
            signal.signal(signal.SIGTERM, _on_signal)


def _on_signal(signum: int, frame: Any) -> None:
    for run in list(_active):
        run._killed_by = signum
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    raise SystemExit(128 + signum)


def _at_exit() -> None:
    exc = getattr(sys, "last_value", None)
    for run in reversed(list(_active)):
        run._end_at_exit(exc)
