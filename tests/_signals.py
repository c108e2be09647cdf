"""Children that Ctrl-C can stop, however the tests were started.

A process started in the background (``nohup``, a CI runner, ``cmd &`` in a script) hands
SIGINT on *ignored* to its children, and a Python child that starts with SIGINT ignored keeps
it ignored instead of raising KeyboardInterrupt: a test that sends it SIGINT would hang. Pass
:func:`default_sigint` as ``preexec_fn`` to every child a test or benchmark sends SIGINT to.
"""

from __future__ import annotations

import signal

__all__ = ["default_sigint"]


def default_sigint() -> None:
    """``preexec_fn``: the child starts with SIGINT at its default disposition, so Python
    installs its KeyboardInterrupt handler as it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
