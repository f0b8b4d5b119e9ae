"""``tracker gateway --workers N``: N gateway processes serving one port, for more clients than one core takes.

Each worker binds the port itself with ``SO_REUSEPORT`` (Linux spreads new connections over the listening
sockets), and is a whole gateway: it reads every record of ``courier-positions`` into its own hub (a standalone
reader, as any gateway), so each worker pays the input once and its share of the clients. What a gateway runs
once is safe N times: the DLQ indexer is a consumer group (the workers share its partitions), the courier
expiry sweep of Redis is idempotent, and the stats are read from Redis. Limits (``TRACKER_MAX_CLIENTS``,
``TRACKER_WS_MAX_PER_ADDRESS``) and ``/metrics`` are each worker's own: a scrape or a connection lands on one
worker.

This process only supervises: it starts the workers with its settings, restarts one that exits (with backoff;
more than ``TRACKER_RESTART_LIMIT`` exits within ``TRACKER_RESTART_WINDOW_S``, as for ``tracker up``'s children,
is a crash loop, and all stop), and passes SIGINT and SIGTERM on.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

from tracker.settings import Settings
from tracker.signals import stop_flag
from tracker.supervision import RestartPolicy, child_env, die_with, exit_reason, popen, stop_process

log = logging.getLogger(__name__)

WORKER_FLAG = "--worker"  # the hidden flag the supervisor starts each worker with


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (and SO_REUSEADDR, as uvicorn binds), not listening
    yet: uvicorn listens on it."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host in ("::", "") else 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def run(settings: Settings, count: int) -> int:
    """Start ``count`` workers with ``settings`` and keep them running until SIGINT or SIGTERM."""
    if settings.http_port == 0:
        raise ValueError("--workers needs a fixed --port: with port 0 each worker would pick its own")
    reuse_port_socket(settings.http_host, settings.http_port).close()  # the port is free to share: fail here if not
    stop = stop_flag((signal.SIGINT, signal.SIGTERM), second_exits=True)
    restarts = RestartPolicy(settings.restart_limit, settings.restart_window_s)
    env = child_env(settings, "gateway")
    argv = [sys.executable, "-m", "tracker", "gateway", WORKER_FLAG]

    def start() -> subprocess.Popen:
        return popen(argv, env=env, preexec_fn=die_with(os.getpid()))

    workers = [start() for _ in range(count)]
    pids = ", ".join(str(worker.pid) for worker in workers)
    log.info("gateway: %d workers on %s:%d (pids %s)", count, settings.http_host, settings.http_port, pids)
    ends: list[float] = []
    code = 0
    try:
        while not stop:
            time.sleep(0.2)
            for index, worker in enumerate(workers):
                if worker.poll() is None or stop:
                    continue
                now = time.monotonic()
                ends = [*restarts.recent(ends, now), now]
                delay = restarts.decide(ends, now)
                if delay is None:
                    log.error(
                        "gateway worker %d %s, the %d-th exit within %g s: stopping",
                        worker.pid,
                        exit_reason(worker.returncode),
                        len(ends),
                        restarts.window_s,
                    )
                    code = 1
                    stop.append(0)
                    break
                log.error("gateway worker %d %s; restarting in %g s", worker.pid, exit_reason(worker.returncode), delay)
                time.sleep(delay)
                workers[index] = start()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            stop_process(worker, timeout_s=15)
    return code
