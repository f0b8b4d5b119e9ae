"""Supervising child processes and tasks: when to restart, how a child ended, its environment, and children
that die with us.

Shared by the services that supervise something (the gateway its background tasks, ``tracker gateway
--workers N`` its worker processes) and by ``tracker up`` and :mod:`tracker.local`, which run the whole system
on one machine. It lives outside :mod:`tracker.local` because the services may never import that package
(docs/architecture.md, "Never"); it imports nothing of the product but the settings.

Every child is started with ``PR_SET_PDEATHSIG`` on Linux (:func:`die_with`), so it dies with us even when we
are killed with SIGKILL, and stopped with SIGTERM, then SIGKILL (:func:`stop_process`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from tracker.settings import Settings

# The secrets in the settings, and the children that need each: every other child runs without it, so a
# simulator's (or a validator's) environment cannot leak the token that writes to the review.
_SECRETS: dict[str, frozenset[str]] = {
    "TRACKER_ADMIN_TOKEN": frozenset({"gateway"}),
    "TRACKER_OPERATOR_TOKENS": frozenset({"gateway"}),
    "TRACKER_VIEWER_TOKEN": frozenset({"gateway"}),
    "TRACKER_REPLAY_SECRET": frozenset({"gateway", "validate"}),  # gateways sign replays, validators verify
    # gateways verify tracking links; the simulator signs its demo orders' (`--track-orders`)
    "TRACKER_TRACKING_SECRET": frozenset({"gateway", "simulate"}),
}


def child_env(settings: Settings, command: str | None = None, token: str | None = None) -> dict[str, str]:
    """Environment for the ``tracker COMMAND`` child process that should use ``settings``' services, with
    only the secrets that command needs (the admin ``token`` only for the gateway). Without a command (tests,
    benchmarks starting several kinds), every secret in ``settings`` is passed."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env.pop("TRACKER_VALIDATOR_ID", None)  # each child has its own
    if token:
        env["TRACKER_ADMIN_TOKEN"] = token
    for name, needed_by in _SECRETS.items():
        if command is not None and command not in needed_by:
            env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclasses.dataclass(frozen=True)
class RestartPolicy:
    """When to restart something that ended (a child process, a gateway task), and when to give up. Pure.

    Only the ends within the last ``window_s`` seconds count: the delay doubles with each of them, from
    ``first_delay_s`` up to ``max_delay_s`` (so one that then ran quietly for a whole window starts again from
    the first delay), and more than ``limit`` of them is a crash loop: give up. ``limit=None`` never gives up.
    """

    limit: int | None
    window_s: float
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def recent(self, ends: Sequence[float], now: float) -> list[float]:
        """The ends (monotonic seconds) that still count at ``now``: what a caller needs to keep."""
        return [at for at in ends if now - at <= self.window_s]

    def decide(self, ends: Sequence[float], now: float) -> float | None:
        """Seconds to wait before restarting, or None to give up; ``ends`` includes the end just seen."""
        count = len(self.recent(ends, now))
        if self.limit is not None and count > self.limit:
            return None
        return min(self.first_delay_s * 2 ** min(max(count - 1, 0), 32), self.max_delay_s)


def exit_reason(returncode: int) -> str:
    """``exit code 1`` or ``killed by SIGKILL``: how a child ended, in a few words."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def die_with(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the kernel SIGKILLs the child when ``parent_pid`` dies (Linux only).

    If the parent is already gone by the time the child gets here, the child exits at once.
    """

    def preexec() -> None:  # runs in the forked child, before exec
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):  # best effort: stop() and atexit still end it
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() != parent_pid:
                os._exit(1)

    return preexec


_launcher_lock = threading.Lock()
_launcher_queue: queue.SimpleQueue | None = None


def _launcher_loop(requests: queue.SimpleQueue) -> None:
    while True:
        future, args, kwargs = requests.get()
        try:
            future.set_result(subprocess.Popen(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            future.set_exception(error)


def popen(*args, **kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` from a thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so children started from e.g. an
    ``asyncio.to_thread`` worker would die with that worker. The main thread spawns directly; any other thread
    hands the call to one daemon launcher thread.
    """
    global _launcher_queue  # noqa: PLW0603 - the launcher thread and its queue start on first use, under the lock
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(*args, **kwargs)
    with _launcher_lock:
        if _launcher_queue is None:
            _launcher_queue = queue.SimpleQueue()
            threading.Thread(target=_launcher_loop, args=(_launcher_queue,), name="child-launcher", daemon=True).start()
        requests = _launcher_queue
    future: concurrent.futures.Future[subprocess.Popen] = concurrent.futures.Future()
    requests.put((future, args, kwargs))
    return future.result()


def stop_process(process: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited after ``timeout_s``; returns once it is reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
