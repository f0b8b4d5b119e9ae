"""``tracker up``: the whole system on one machine, as child processes, and one status line.

Embedded broker and Redis unless configured, then topics, validator(s), gateway, the ingest, the simulator
and a few simulated phones posting through the ingest. A child that exits is restarted with backoff
(:class:`~tracker.supervision.RestartPolicy`), and the status line says which and why; only a crash loop (more
than ``restart_limit`` exits of one child within ``restart_window_s``) stops everything, with exit code 1. Ctrl-C
or SIGTERM stops every child (SIGTERM, then SIGKILL after a grace period) and then the embedded services;
children also die with us if we are killed outright (PR_SET_PDEATHSIG, see tracker/supervision.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import msgspec

from tracker import constants as c
from tracker.kafka import ensure_topics, partition_mismatch
from tracker.local.embedded import EmbeddedError, EmbeddedStack
from tracker.local.processes import spawn
from tracker.settings import Settings
from tracker.signals import stop_flag
from tracker.supervision import RestartPolicy, child_env, exit_reason, stop_process

log = logging.getLogger(__name__)


def _port_free(host: str, port: int) -> bool:
    """Whether the gateway could bind ``port`` now: with SO_REUSEADDR, as uvicorn binds, so a port still in
    TIME_WAIT from the previous run counts as free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _reachable(host: str) -> str:
    """The address to reach a service bound to ``host`` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


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


@dataclasses.dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen
    finite: bool  # ends by itself when its work is done (a simulator with --duration/--count): exit 0 is final
    ends: list[float] = dataclasses.field(default_factory=list)  # monotonic times of its recent exits
    restarts: int = 0
    last_reason: str | None = None
    restart_at: float | None = None  # a restart is due then (monotonic)
    restarted_at: float = 0.0
    done: bool = False  # finished its work; never restarted


class LocalSystem:
    """Gateway and validators (and optionally the simulator) as child processes of this one.

    Used by ``tracker up``, the browser and end-to-end tests and the benchmarks, so they all run the product the
    way a user does.

    Supervision: :meth:`supervise` looks at every child once and restarts the ones that exited, with the backoff
    of :class:`~tracker.supervision.RestartPolicy` (settings ``restart_limit`` exits within ``restart_window_s``
    is a crash loop: :attr:`failed` says which child, and nothing is restarted any more). Nothing supervises by
    itself: ``tracker up`` calls :meth:`supervise` from its watch loop every tenth of a second; tests and
    benchmarks, whose thread is busy elsewhere (an event loop), call :meth:`start_supervisor` for a background
    thread that does the same until :meth:`stop`. A restarted child's process is a child of the thread that
    restarted it (it dies with that thread, ``PR_SET_PDEATHSIG``), so :meth:`stop` ends the children before the
    thread.
    """

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        *,
        validators: int = 1,
        token: str | None = None,
        ingest: bool = False,
        events: bool = False,
    ) -> None:
        # Gateways sign replays and validators verify them with one shared secret: like the admin token, one
        # is made up for this run when none is configured, or every replay from the review page is refused.
        if not settings.replay_secret:
            settings = settings.replace(replay_secret=secrets.token_urlsafe(32))
        # Tracking links likewise: signed by the gateway (and the simulator's demo orders), one secret per run
        # unless configured (links of an earlier run are then refused as invalid).
        if not settings.tracking_secret:
            settings = settings.replace(tracking_secret=secrets.token_urlsafe(32))
        self.settings = settings
        self.log_dir = log_dir
        self.validators = validators
        self.token = token or settings.admin_token or secrets.token_urlsafe(18)
        self.policy = RestartPolicy(settings.restart_limit, settings.restart_window_s)
        self.failed: str | None = None  # set when a child is in a crash loop: one line naming it and its log
        self._children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._supervisor: threading.Thread | None = None
        self._supervisor_stop = threading.Event()
        self.base_url = f"http://{_reachable(settings.http_host)}:{settings.http_port}"
        # `tracker ingest` too (tracker up; tests that need it), where phones post.
        self.ingest = ingest
        self.events = events  # `tracker events` too: the zone and status events behind /api/events
        self.ingest_url = f"http://{_reachable(settings.ingest_host)}:{settings.ingest_port}"

    @property
    def children(self) -> list[tuple[str, subprocess.Popen]]:
        """Each child's name and current process (a restart replaces the process)."""
        return [(child.name, child.process) for child in self._children.values()]

    @property
    def restarts(self) -> dict[str, int]:
        """How many times each child has been restarted."""
        return {child.name: child.restarts for child in self._children.values()}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _popen(self, name: str, argv: list[str]) -> subprocess.Popen:
        return spawn(
            [sys.executable, "-m", "tracker", *argv], self.log_path(name), child_env(self.settings, argv[0], self.token)
        )

    def spawn(self, name: str, argv: list[str], *, finite: bool = False) -> subprocess.Popen:
        """Start child ``name`` (``tracker ARGV...``); ``finite``: an exit with code 0 means it is done."""
        with self._lock:
            process = self._popen(name, argv)
            self._children[name] = Child(name, argv, process, finite)
        return process

    def start(self) -> str:
        """Start gateway and validators (and the ingest); returns the gateway's base URL once it (and the
        ingest) answer /readyz."""
        gateway = self.spawn("gateway", ["gateway"])
        for index in range(self.validators):
            self.spawn(f"validator-{index + 1}", ["validate", "--validator-id", f"validator-{index + 1}"])
        ingest = self.spawn("ingest", ["ingest"]) if self.ingest else None
        if self.events:
            self.spawn("events", ["events"])
        if not _wait_http(self.base_url + "/readyz", gateway, self.settings.startup_timeout_s + 30):
            self.stop()
            raise EmbeddedError(f"the gateway did not become ready; see {self.log_path('gateway')}")
        if ingest is not None and not _wait_http(self.ingest_url + "/readyz", ingest, self.settings.startup_timeout_s):
            self.stop()
            raise EmbeddedError(f"the ingest did not become ready; see {self.log_path('ingest')}")
        return self.base_url

    def start_simulator(self, *args: str) -> subprocess.Popen:
        # With a duration or a count the simulator finishes by itself; without, it runs until stopped.
        finite = any(arg.split("=", 1)[0] in ("--duration", "--count") for arg in args)
        return self.spawn("simulator", ["simulate", *args], finite=finite)

    def exited(self) -> tuple[str, int] | None:
        """A child whose process has exited (and is not yet restarted): its name and exit code."""
        for name, process in self.children:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def supervise(self) -> list[str]:
        """Look at every child once: note exits, restart those whose backoff is over. Returns what happened,
        one line per event, for the caller to show (nothing once :attr:`failed` is set or :meth:`stop` began)."""
        events: list[str] = []
        with self._lock:
            if self._closing or self.failed is not None:
                return events
            now = time.monotonic()
            for child in self._children.values():
                if child.done:
                    continue
                if child.restart_at is None:
                    code = child.process.poll()
                    if code is None:
                        continue
                    if child.finite and code == 0:
                        child.done = True
                        events.append(f"{child.name} finished")
                        continue
                    child.last_reason = exit_reason(code)
                    child.ends = [*self.policy.recent(child.ends, now), now]
                    delay = self.policy.decide(child.ends, now)
                    if delay is None:
                        self.failed = (
                            f"{child.name} exited {len(child.ends)} times within "
                            f"{self.policy.window_s:g} s (last: {child.last_reason}); see "
                            f"{self.log_path(child.name)}"
                        )
                        return events
                    child.restart_at = now + delay
                    events.append(
                        f"{child.name} exited ({child.last_reason}); restarting in {delay:g} s "
                        f"(log: {self.log_path(child.name)})"
                    )
                elif now >= child.restart_at:
                    child.process = self._popen(child.name, child.argv)
                    child.restart_at = None
                    child.restarts += 1
                    child.restarted_at = now
        return events

    def restart_note(self) -> str:
        """For the status line: the child restarted last, how often and why (short), or ''."""
        restarted = [child for child in self._children.values() if child.restarts]
        if not restarted:
            return ""
        latest = max(restarted, key=lambda child: child.restarted_at)
        note = f"{latest.name} restarted {latest.restarts}× (last: {latest.last_reason})"
        return note + (f" +{len(restarted) - 1} more" if len(restarted) > 1 else "")

    def start_supervisor(self, interval_s: float = 0.1) -> None:
        """Supervise from a background thread until :meth:`stop` (for callers whose own thread is busy)."""

        def loop() -> None:
            while not self._supervisor_stop.wait(interval_s):
                for event in self.supervise():
                    log.warning("%s", event)
                if self.failed is not None:
                    log.error("giving up: %s", self.failed)
                    return

        if self._supervisor is None:
            self._supervisor = threading.Thread(target=loop, name="tracker-supervisor", daemon=True)
            self._supervisor.start()

    def stop(self) -> None:
        with self._lock:
            self._closing = True  # no restarts from here on
            children = list(self._children.values())
            self._children.clear()
        for child in reversed(children):
            stop_process(child.process, timeout_s=10)
        if self._supervisor is not None:
            self._supervisor_stop.set()
            self._supervisor.join()
            self._supervisor = None

    def __enter__(self) -> LocalSystem:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_up(
    settings: Settings, *, couriers: int, interval_s: float, bad_rate: float, validators: int, simulator: bool
) -> int:
    for host, port, flag, variable in (
        (settings.http_host, settings.http_port, "--port", "TRACKER_HTTP_PORT"),
        (settings.ingest_host, settings.ingest_port, "--ingest-port", "TRACKER_INGEST_PORT"),
    ):
        if not _port_free(host, port):
            print(f"tracker up: port {port} on {host} is in use; pass {flag} or set {variable}", file=sys.stderr)
            return 2
    stop = stop_flag((signal.SIGINT, signal.SIGTERM), second_exits=True)  # a second Ctrl-C: exit at once

    stack = EmbeddedStack(settings)
    system: LocalSystem | None = None
    try:
        settings = stack.start()
        problem = partition_mismatch(settings, asyncio.run(ensure_topics(settings)))
        if problem is not None:
            print(f"tracker up: {problem}", file=sys.stderr)
            return 2
        system = LocalSystem(settings, stack.run_dir, validators=validators, ingest=True, events=True)
        base_url = system.start()
        phones = ""
        links = LinkTail(stack.run_dir / DEMO_LINKS_FILE, base_url)
        if simulator:
            system.start_simulator(
                "--couriers", str(couriers), "--interval", str(interval_s), "--bad-rate", str(bad_rate),
                "--track-orders", str(DEMO_ORDERS), "--tracking-links", str(links.path),
            )  # fmt: skip
            phones = _start_phones(settings, system, stack.run_dir, interval_s, bad_rate)
        open_note = (
            "  (TRACKER_INGEST_AUTH=open: ANY DEVICE ID IS TAKEN, NO TOKEN)" if settings.ingest_auth == "open" else ""
        )
        print(
            f"\n  Live map        {base_url}/\n  Rejected pings  {base_url}/dlq\n"
            f"  Ingest          {system.ingest_url}{open_note}\n{phones}"
            f"  Admin token     {system.token}\n  Kafka           {settings.kafka_bootstrap_servers}\n"
            f"  Redis           {settings.redis_url}\n  Logs            {stack.run_dir}\n"
            + (f"{links.banner()}" if simulator else "")
            + "\n  A process that exits is restarted; Ctrl-C stops everything.\n",
            flush=True,
        )
        return _watch(settings, system, stop, links if simulator else None)
    except EmbeddedError as exc:
        print(f"tracker up: {exc}", file=sys.stderr)
        return 1
    finally:
        if system is not None:
            system.stop()
        stack.stop()


# `tracker up` shows the ingest at work: a few simulated phones post through it, as OsmAnd / Traccar Client
# does, with device tokens registered for them (their ids are their own, beside the simulator's couriers).
DEMO_PHONES = 5
DEMO_PHONE_PREFIX = "phone-"
DEMO_TOKENS_FILE = "ingest-tokens.json"


def _start_phones(settings: Settings, system: LocalSystem, run_dir: Path, interval_s: float, bad_rate: float) -> str:
    """Register the demo phones (tokens in ``run_dir``, readable by this user only) and start a simulator that
    posts their fixes to the ingest; returns the line that says so."""
    from simulator.fleet import partner_id_for

    args = ["--couriers", str(DEMO_PHONES), "--interval", str(interval_s), "--bad-rate", str(bad_rate)]
    args += ["--id-prefix", DEMO_PHONE_PREFIX, "--via-ingest", system.ingest_url, "--protocol", "osmand"]
    ids = [partner_id_for(index, DEMO_PHONE_PREFIX) for index in range(DEMO_PHONES)]
    where = "any id (open)"
    if settings.ingest_auth == "token":
        path = run_dir / DEMO_TOKENS_FILE
        tokens = asyncio.run(_register(settings, ids))
        path.touch(mode=0o600)
        path.write_text(msgspec.json.encode(tokens).decode(), "utf-8")
        args += ["--tokens", str(path)]
        where = f"tokens in {path}"
    system.spawn("phones", ["simulate", *args])
    return f"  Phones          {DEMO_PHONES} simulated phones post to the ingest ({ids[0]}...; {where})\n"


async def _register(settings: Settings, ids: list[str]) -> dict[str, str]:
    """A fresh token for each demo phone (one left from an earlier run on the same Redis is revoked)."""
    from tracker.ingest import devices
    from tracker.store import Store

    async with Store(settings) as store:
        tokens = {}
        for device_id in ids:
            with contextlib.suppress(devices.DeviceError):
                await devices.revoke(store, device_id)
            tokens[device_id] = await devices.add(store, device_id)
        return tokens


# Customers' tracking links for `tracker up`: the simulator keeps a few demo orders registered for couriers
# a minute or two from their drop-off (simulator/orders.py) and appends each one's link to a file; `tracker
# up` prints each new one (a link serves its order until it is delivered, then closes).
DEMO_ORDERS = 3
DEMO_LINKS_FILE = "tracking-links.txt"


class LinkTail:
    """The demo orders' links file, read as it grows: each new line is a new link to print."""

    def __init__(self, path: Path, base_url: str) -> None:
        self.path = path
        self.base_url = base_url
        self.offset = 0
        path.unlink(missing_ok=True)  # (a file of an earlier run in the same directory)

    def new(self) -> list[str]:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [self.base_url + line for line in complete.decode("utf-8", "replace").splitlines() if line]

    def banner(self) -> str:
        return f"  Tracking        {DEMO_ORDERS} customers' links, printed below as simulated couriers get orders\n"


def _watch(settings: Settings, system: LocalSystem, stop: list[int], links: LinkTail | None = None) -> int:
    """Supervise the children every tenth of a second and print a status line every two seconds (and each new
    demo tracking link), until a signal (0) or a crash loop (1)."""
    previous: tuple[float, int] | None = None
    interactive = sys.stdout.isatty()
    # An event gets a line of its own; on a terminal it first wipes the status line it lands on.
    wipe = "\r\033[K" if interactive else ""
    next_status = time.monotonic()
    while not stop:
        for event in system.supervise():
            print(f"{wipe}tracker up: {event}", flush=True)
        if system.failed is not None:
            print(f"{wipe}tracker up: {system.failed}; stopping", file=sys.stderr, flush=True)
            return 1
        if time.monotonic() >= next_status:
            for link in links.new() if links is not None else ():
                print(f"{wipe}  Tracking        {link}", flush=True)
            previous = _print_status(settings, system, previous, wipe, interactive)
            next_status = time.monotonic() + 2
        time.sleep(0.1)
    print("\nstopping…", flush=True)
    return 0


def _print_status(
    settings: Settings, system: LocalSystem, previous: tuple[float, int] | None, wipe: str, interactive: bool
) -> tuple[float, int]:
    try:
        counters = asyncio.run(_counters(settings))
    except Exception as exc:  # noqa: BLE001 - a status line is not worth dying for
        log.debug("counters unavailable: %r", exc)
        counters = {}
    total = sum(counters.get(k, 0) for k in c.VERDICT_COUNTERS)
    now = time.monotonic()
    rate = 0.0 if previous is None else (total - previous[1]) / (now - previous[0])
    line = (
        f"validated {total:,} pings ({rate:,.0f}/s) · accepted {counters.get('accepted', 0):,} · "
        f"rejected {counters.get('rejected', 0):,} · duplicates {counters.get('duplicates', 0):,}"
    )
    if note := system.restart_note():
        line += " · " + note
    print(wipe + line, end="" if interactive else "\n", flush=True)
    return now, total
