"""Helpers shared by every tier of tests: waiting for something to happen, and the session's fixed facts.

Test modules import from here (and from the tiers' own ``*_helpers`` modules), never from another test module
or from a conftest; conftest.py files hold fixtures only.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker.models import OutRecord, Record
from tracker.settings import Settings
from tracker.supervision import child_env

ROOT = Path(__file__).resolve().parent.parent
REPLAY_SECRET = "test-replay-secret"

# "kafka" (Apache Kafka, the default embedded broker, or any cluster given by KAFKA_BOOTSTRAP_SERVERS) or
# "tansu" (`make test-tansu`): the few tests that depend on broker behaviour branch on it.
BROKER = "kafka" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else Settings.from_env().embedded_broker


def value_of(record: Record | OutRecord) -> bytes:
    """The value of a record the test expects to have one."""
    assert record.value is not None, record
    return record.value


def run_tracker(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``tracker ARGS...`` in a child process, as a user runs it: with none of this environment's connection or
    ``TRACKER_*`` settings (only ``env``'s), stdin ``stdin``, output captured."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL") and not k.startswith("TRACKER_")
    }
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        env=clean | (env or {}),
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``tracker`` child process that should use ``settings``' services."""
    return child_env(settings)


def _timed_out(timeout_s: float, what: str, explain: Callable[[], str] | None) -> AssertionError:
    message = f"timed out after {timeout_s:g} s waiting for {what}"
    return AssertionError(message + "\n" + explain() if explain else message)


async def eventually(
    check: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "the condition",
    explain: Callable[[], str] | None = None,
) -> Any:
    """Call ``check`` (plain or async) every ``interval_s`` until it returns something truthy; return that.

    After ``timeout_s`` without it, raise ``AssertionError("timed out after N s waiting for <what>")``, with
    ``explain()`` (e.g. the tail of a child's log) on the lines below. An exception raised by ``check`` ends
    the wait at once, so a check may also assert what must hold meanwhile (a child still running).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, what, explain)
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], Any],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "the condition",
    explain: Callable[[], str] | None = None,
) -> Any:
    """:func:`eventually` for a test without an event loop of its own: ``check`` is plain, the wait blocks."""
    deadline = time.monotonic() + timeout_s
    while True:
        if result := check():
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(timeout_s, what, explain)
        time.sleep(interval_s)
