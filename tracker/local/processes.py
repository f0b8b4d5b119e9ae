"""Child processes that die with us, free loopback ports, and a process's resident memory (Linux).

Shared by both launchers in :mod:`tracker.local` and by ``tracker up``. Every child is started with
``PR_SET_PDEATHSIG`` on Linux (:func:`die_with`), so it dies with us even when we are killed with SIGKILL, and
stopped with SIGTERM, then SIGKILL (:func:`stop_process`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports: all are bound at the same time, so none is handed out twice."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (Linux /proc), or None when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


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


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a child that dies with us (from any thread); stdout and stderr go to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with(os.getpid()),
            start_new_session=True,
        )


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
