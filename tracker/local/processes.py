"""Child processes that die with us, started with their output in a log file; free loopback ports, and a
process's resident memory (Linux).

Shared by both launchers in :mod:`tracker.local` and by ``tracker up``. The children are started by
:func:`tracker.supervision.popen` with :func:`tracker.supervision.die_with` (``PR_SET_PDEATHSIG`` on Linux), so
they die with us even when we are killed with SIGKILL; :func:`tracker.supervision.stop_process` stops one.
Those three live in :mod:`tracker.supervision`, where the services may import them; they are named here too
(``__all__``) for the callers that take every process helper from this module (the benchmarks).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tracker.supervision import die_with, popen, stop_process

__all__ = ["die_with", "free_port", "free_ports", "popen", "rss_bytes", "spawn", "stop_process"]


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
