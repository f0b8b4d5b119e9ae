"""``tracker gateway --workers N``: N gateway processes serving one port, for more clients than one core takes.

Each worker binds the port itself with ``SO_REUSEPORT`` (Linux spreads new connections over the listening
sockets), and is a whole gateway but for one part: it does not read ``courier-positions`` from Kafka itself. One
more process, the relay (tracker/relay.py), reads it and hands every record to each worker over a Unix socket,
so Kafka's client is paid once, not once per worker (about a third of what following 20,000 pings a second
costs a gateway). Each worker still decodes and applies every position into its own hub and serves its share of the
clients. What a gateway runs once is safe N times: the DLQ indexer is a consumer group (the workers share its
partitions), the courier expiry sweep of Redis is idempotent, and the stats are read from Redis. Limits
(``TRACKER_MAX_CLIENTS``, ``TRACKER_WS_MAX_PER_ADDRESS``) and ``/metrics`` are each worker's own: a scrape or a
connection lands on one worker.

This process only supervises: it starts the relay and the workers with its settings (the relay's socket in a
private temporary directory), restarts one that exits (with backoff; more than ``TRACKER_RESTART_LIMIT`` exits
within ``TRACKER_RESTART_WINDOW_S``, as for ``tracker up``'s children, is a crash loop, and all stop), and
passes SIGINT and SIGTERM on. A restarted relay costs each worker a reload from Redis, not a gap.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tracker.settings import Settings
from tracker.signals import stop_flag
from tracker.supervision import RestartPolicy, child_env, die_with, exit_reason, popen, stop_process

log = logging.getLogger(__name__)

WORKER_FLAG = "--worker"  # the hidden flag the supervisor starts each worker with
RELAY_FLAG = "--relay"  # ... and the relay


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
    """Start the relay and ``count`` workers with ``settings`` and keep them running until SIGINT or SIGTERM."""
    if settings.http_port == 0:
        raise ValueError("--workers needs a fixed --port: with port 0 each worker would pick its own")
    reuse_port_socket(settings.http_host, settings.http_port).close()  # the port is free to share: fail here if not
    stop = stop_flag((signal.SIGINT, signal.SIGTERM), second_exits=True)
    restarts = RestartPolicy(settings.restart_limit, settings.restart_window_s)
    with tempfile.TemporaryDirectory(prefix="tracker-relay-") as directory:
        env = {**child_env(settings, "gateway"), "TRACKER_GATEWAY_RELAY": str(Path(directory) / "positions.sock")}
        relay_argv = [sys.executable, "-m", "tracker", "gateway", RELAY_FLAG]
        worker_argv = [sys.executable, "-m", "tracker", "gateway", WORKER_FLAG]
        argvs = [relay_argv] + [worker_argv] * count

        def start(argv: list[str]) -> subprocess.Popen:
            return popen(argv, env=env, preexec_fn=die_with(os.getpid()))

        children = [start(argv) for argv in argvs]
        pids = ", ".join(str(child.pid) for child in children[1:])
        log.info(
            "gateway: %d workers on %s:%d (pids %s), their positions relay pid %d",
            count,
            settings.http_host,
            settings.http_port,
            pids,
            children[0].pid,
        )
        return _supervise(children, argvs, start, restarts, stop)


def _supervise(
    children: list[subprocess.Popen],
    argvs: list[list[str]],
    start: Callable[[list[str]], subprocess.Popen],
    restarts: RestartPolicy,
    stop: list[int],
) -> int:
    ends: list[float] = []
    code = 0
    try:
        while not stop:
            time.sleep(0.2)
            for index, child in enumerate(children):
                if child.poll() is None or stop:
                    continue
                what = "relay" if index == 0 else "worker"
                now = time.monotonic()
                ends = [*restarts.recent(ends, now), now]
                delay = restarts.decide(ends, now)
                if delay is None:
                    log.error(
                        "gateway %s %d %s, the %d-th exit within %g s: stopping",
                        what,
                        child.pid,
                        exit_reason(child.returncode),
                        len(ends),
                        restarts.window_s,
                    )
                    code = 1
                    stop.append(0)
                    break
                log.error("gateway %s %d %s; restarting in %g s", what, child.pid, exit_reason(child.returncode), delay)
                time.sleep(delay)
                children[index] = start(argvs[index])
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            stop_process(child, timeout_s=15)
    return code
