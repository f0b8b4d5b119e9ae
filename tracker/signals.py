"""How our processes stop on SIGINT and SIGTERM: the first signal asks for a graceful stop, a second forces it.

Two forms of the same rule: :func:`install_stop_handlers` for an asyncio service (``tracker validate``,
``tracker simulate``), which sets an ``asyncio.Event``; :func:`stop_flag` for a blocking loop (``tracker up``,
the local Kafka launcher), which appends to a plain list that the loop polls.

A process installs them when it starts to run, once its flags and settings are checked: :func:`installed`
counts the installs, so that ``tracker``'s exit codes can tell a bad flag (2) from a running service's
crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Iterable

log = logging.getLogger("tracker")  # the logger the stop line has always gone to

_installs = 0


def installed() -> int:
    """How many times this process has installed stop handlers (either form): a number that grows when a
    command starts to run."""
    return _installs


def install_stop_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """First SIGINT/SIGTERM: graceful stop (finish the batch, commit, leave). Second: exit now.

    A repeat within a second is the same request delivered twice (``timeout`` and terminals signal the
    whole process group), not a second request, so it is ignored.
    """
    global _installs  # noqa: PLW0603 - a count of this process's installs, read by installed()
    first_at: list[float] = []

    def on_signal(signum: int) -> None:
        if first_at:
            if loop.time() - first_at[0] > 1.0:
                os._exit(128 + signum)
            return
        first_at.append(loop.time())
        log.info("%s received, stopping gracefully (again to force)", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    _installs += 1


def stop_flag(signums: Iterable[signal.Signals], *, second_exits: bool) -> list[int]:
    """A list that each of ``signums`` appends its number to; with ``second_exits``, a signal that finds the list
    non-empty exits the process at once (code 128 + signal).

    A plain list, not a ``threading.Event``: ``Event.set()`` in a signal handler deadlocks when the signal lands
    while the main thread waits on that Event (its lock is not reentrant). The handlers are installed
    explicitly for every signal, since SIGINT may be inherited as ignored.
    """
    global _installs  # noqa: PLW0603 - as in install_stop_handlers
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if second_exits and stop:
            os._exit(128 + signum)
        stop.append(signum)

    for signum in signums:
        signal.signal(signum, on_signal)
    _installs += 1
    return stop
