"""``tracker up``: the whole system on one machine, as child processes, and one status line.

Embedded broker and Redis unless configured, then topics, validator(s), gateway and simulator. Ctrl-C or
SIGTERM stops every child (SIGTERM, then SIGKILL after a grace period) and then the embedded services;
children also die with us if we are killed outright (PR_SET_PDEATHSIG, see embedded.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tracker.embedded import EmbeddedError, EmbeddedStack, spawn, stop_process
from tracker.kafka import ensure_topics
from tracker.settings import Settings

log = logging.getLogger(__name__)


def child_env(settings: Settings, token: str | None = None) -> dict[str, str]:
    """Environment for a ``tracker`` child process that should use ``settings``' services."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env.pop("TRACKER_VALIDATOR_ID", None)  # each child has its own
    if token:
        env["TRACKER_ADMIN_TOKEN"] = token
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(url: str, process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


async def _counters(settings: Settings) -> dict[str, int]:
    from tracker.store import Store

    async with Store(settings) as store:
        return await store.counters()


class LocalSystem:
    """Gateway and validators (and optionally the simulator) as child processes of this one.

    Used by ``tracker up``, the browser and end-to-end tests and the latency benchmark, so they all run the
    product the way a user does.
    """

    def __init__(self, settings: Settings, log_dir: Path, *, validators: int = 1, token: str | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.validators = validators
        self.token = token or settings.admin_token or secrets.token_urlsafe(18)
        self.children: list[tuple[str, subprocess.Popen]] = []
        host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
        self.base_url = f"http://{host}:{settings.http_port}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        process = spawn([sys.executable, "-m", "tracker", *argv], self.log_dir / f"{name}.log",
                        child_env(self.settings, self.token))
        self.children.append((name, process))
        return process

    def start(self) -> str:
        """Start gateway and validators; returns the gateway's base URL once it answers /readyz."""
        gateway = self.spawn("gateway", ["gateway"])
        for index in range(self.validators):
            self.spawn(f"validator-{index + 1}", ["validate", "--validator-id", f"validator-{index + 1}"])
        if not _wait_http(self.base_url + "/readyz", gateway, self.settings.startup_timeout_s + 30):
            self.stop()
            raise EmbeddedError(f"the gateway did not become ready; see {self.log_dir / 'gateway.log'}")
        return self.base_url

    def start_simulator(self, *args: str) -> subprocess.Popen:
        return self.spawn("simulator", ["simulate", *args])

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.children:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop(self) -> None:
        while self.children:
            _, process = self.children.pop()
            stop_process(process, timeout_s=10)

    def __enter__(self) -> LocalSystem:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_up(settings: Settings, *, couriers: int, interval_s: float, bad_rate: float, validators: int,
           simulator: bool) -> int:
    if not _port_free(settings.http_host, settings.http_port):
        print(f"tracker up: port {settings.http_port} on {settings.http_host} is in use; pass --port or set "
              f"TRACKER_HTTP_PORT", file=sys.stderr)
        return 2
    # A plain list as the flag, not a threading.Event: Event.set() in a signal handler deadlocks when the
    # signal lands while the main thread waits on that Event (its lock is not reentrant).
    stop: list[int] = []

    def on_signal(signum, frame) -> None:
        if stop:
            os._exit(128 + signum)
        stop.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    stack = EmbeddedStack(settings)
    system: LocalSystem | None = None
    try:
        settings = stack.start()
        asyncio.run(ensure_topics(settings))
        system = LocalSystem(settings, stack.run_dir, validators=validators)
        base_url = system.start()
        if simulator:
            system.start_simulator("--couriers", str(couriers), "--interval", str(interval_s),
                                   "--bad-rate", str(bad_rate))
        print(f"\n  Live map        {base_url}/\n  Rejected pings  {base_url}/dlq\n"
              f"  Admin token     {system.token}\n  Kafka           {settings.kafka_bootstrap_servers}\n"
              f"  Redis           {settings.redis_url}\n  Logs            {stack.run_dir}\n\n"
              f"  Ctrl-C stops everything.\n", flush=True)
        return _watch(settings, system, stop)
    except EmbeddedError as exc:
        print(f"tracker up: {exc}", file=sys.stderr)
        return 1
    finally:
        if system is not None:
            system.stop()
        stack.stop()


def _watch(settings: Settings, system: LocalSystem, stop: list[int]) -> int:
    """One status line every two seconds until a signal or a child dies."""
    previous: tuple[float, int] | None = None
    interactive = sys.stdout.isatty()
    while not stop:
        exited = system.exited()
        if exited is not None:
            print(f"\ntracker up: {exited[0]} exited with code {exited[1]}; stopping (logs in "
                  f"{system.log_dir})", file=sys.stderr)
            return 1
        try:
            counters = asyncio.run(_counters(settings))
        except Exception as exc:  # a status line is not worth dying for
            log.debug("counters unavailable: %r", exc)
            counters = {}
        total = sum(counters.get(k, 0) for k in ("accepted", "rejected", "duplicates"))
        now = time.monotonic()
        rate = 0.0 if previous is None else (total - previous[1]) / (now - previous[0])
        previous = (now, total)
        line = (f"validated {total:,} pings ({rate:,.0f}/s) · accepted {counters.get('accepted', 0):,} · "
                f"rejected {counters.get('rejected', 0):,} · duplicates {counters.get('duplicates', 0):,}")
        print(("\r" + line + "   ") if interactive else line, end="" if interactive else "\n", flush=True)
        for _ in range(20):
            if stop:
                break
            time.sleep(0.1)
    print("\nstopping…", flush=True)
    return 0
