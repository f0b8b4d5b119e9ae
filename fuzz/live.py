"""The live fuzz: the corpus through a running system (gateway + validators as child processes), accounted for.

:func:`fuzz_live` produces ``payloads`` records from :mod:`fuzz.corpus` to ``location-updates`` of a running
:class:`~tracker.up.LocalSystem`, waits until Redis's counters account for every one of them, then checks
what a user would rely on:

- produced == accepted + rejected + duplicates, exactly;
- the dead-letter topic holds one dead letter per rejected ping (by original partition and offset), each
  with a ``dlq.reason``, and as many of each reason as the counters say;
- the review index counts every one of them;
- no child process exited (and none was restarted, where the system restarts children);
- a good ping produced after the fuzz reaches the map (``GET /api/couriers/{id}`` answers 200).

:func:`main` (``python -m fuzz``) runs it on the embedded stack, or on the services named by
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL``, in a fresh namespace.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from bench.common import cpu_seconds, running
from fuzz.corpus import KINDS, Corpus
from fuzz.corpus import payloads as corpus_payloads
from fuzz.wire import RawProducer
from tracker import constants as c
from tracker.dlq.index import DlqIndex
from tracker.kafka import Consumer, Producer, ensure_topics
from tracker.local.embedded import EmbeddedStack
from tracker.local.processes import free_port
from tracker.models import Headers, OutRecord
from tracker.settings import Settings
from tracker.store import Store
from tracker.up import LocalSystem

CHUNK = 1000  # payloads per send_many call
IN_FLIGHT = 4  # chunks produced but not yet acknowledged, while the next is generated
VERDICTS = c.VERDICT_COUNTERS


def progress(message: str) -> None:
    print(f"[fuzz {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass
class Report:
    payloads: int
    seed: int
    seconds: float = 0.0
    produce_seconds: float = 0.0
    by_kind: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    dead_letters: int = 0  # records in the DLQ topic
    dead_letters_distinct: int = 0  # distinct original (partition, offset)
    dead_letters_by_reason: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    index_total: int | None = None
    exits: list[str] = dataclasses.field(default_factory=list)
    restarts: dict[str, int] = dataclasses.field(default_factory=dict)
    good_ping_s: float | None = None
    cpu_self_s: float = 0.0
    cpu_children_s: dict[str, float] = dataclasses.field(default_factory=dict)
    log_dir: Path | None = None
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def accounted(self) -> int:
        return sum(self.counters.get(name, 0) for name in VERDICTS)

    def summary(self) -> str:
        rejected = {
            name.split(":", 1)[1]: count
            for name, count in sorted(self.counters.items())
            if name.startswith(c.C_REJECTED_BY)
        }
        children = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(self.cpu_children_s.items()))
        lines = [
            (
                f"fuzz: {self.payloads:,} payloads (seed {self.seed}) in {self.seconds:.1f} s "
                f"(produced in {self.produce_seconds:.1f} s, {self.payloads / max(self.produce_seconds, 1e-9):,.0f}/s)"
            ),
            "  kinds: " + " · ".join(f"{kind} {count:,}" for kind, count in self.by_kind.most_common()),
            (
                f"  verdicts: accepted {self.counters.get('accepted', 0):,} · rejected "
                f"{self.counters.get('rejected', 0):,} · duplicates {self.counters.get('duplicates', 0):,} "
                f"(accounted {self.accounted:,} of {self.payloads:,})"
            ),
            "  rejected by reason: "
            + (" · ".join(f"{reason} {count:,}" for reason, count in rejected.items()) or "none"),
            (
                f"  dead-letter topic: {self.dead_letters:,} records, {self.dead_letters_distinct:,} distinct pings; "
                f"review index: {'unread' if self.index_total is None else f'{self.index_total:,}'}"
            ),
            (
                f"  CPU: this load generator {self.cpu_self_s:.1f} s ({self.cpu_self_s / max(self.seconds, 1e-9):.0%} "
                f"of one core over the run); during it, {children or 'children unknown'}"
            ),
            (
                f"  children: {'; '.join(self.exits) or 'none exited'}; restarts "
                f"{sum(self.restarts.values()) if self.restarts else 0}"
            ),
            (
                f"  good ping after the fuzz: "
                f"{'not on the map' if self.good_ping_s is None else f'on the map after {self.good_ping_s:.1f} s'}"
            ),
        ]
        if self.log_dir is not None:
            lines.append(f"  logs: {self.log_dir}")
        lines.append("PASS" if self.passed else "FAIL\n" + "\n".join(f"  - {failure}" for failure in self.failures))
        return "\n".join(lines)


class _Children:
    """Exits and CPU of a LocalSystem's children, sampled as the run goes (a restart replaces a process)."""

    def __init__(self, system: LocalSystem) -> None:
        self.system = system
        self.exits: dict[int, str] = {}  # pid -> "name exited with code N"
        self.cpu: dict[int, tuple[str, float, float]] = {}  # pid -> (name, CPU seconds at start, last seen)
        self.sample(baseline=True)  # CPU spent before the run (start-up) is not the fuzz's

    def sample(self, *, baseline: bool = False) -> None:
        for name, process in self.system.children:
            code = process.poll()
            if code is not None:
                self.exits.setdefault(process.pid, f"{name} exited with code {code}")
                continue
            try:
                seconds = cpu_seconds(process.pid)
            except (OSError, IndexError, ValueError):
                continue
            start = self.cpu[process.pid][1] if process.pid in self.cpu else (seconds if baseline else 0.0)
            self.cpu[process.pid] = (name, start, seconds)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds used during the run: gateway, validators (all of their processes)."""
        totals: dict[str, float] = collections.defaultdict(float)
        for name, start, last in self.cpu.values():
            totals["validators" if name.startswith("validator") else name] += last - start
        return dict(totals)


async def fuzz_live(
    settings: Settings,
    system: LocalSystem,
    *,
    payloads: int,
    seed: int,
    kinds: dict[str, float] | None = None,
    stall_s: float = 60.0,
    every_s: float = 2.0,
    say: Callable[[str], None] = progress,
) -> Report:
    """Produce ``payloads`` corpus records to a running ``system`` and check that each got a verdict."""
    report = Report(payloads, seed, log_dir=system.log_dir)
    started, cpu_before = time.monotonic(), cpu_seconds(os.getpid())
    children = _Children(system)
    async with Store(settings) as store:
        before = await store.counters()
        if any(before.get(name) for name in VERDICTS):
            raise RuntimeError(f"namespace {settings.namespace!r} already has verdicts; the fuzz needs a fresh one")
        await _produce(settings, store, children, report, kinds, every_s, say)
        report.produce_seconds = time.monotonic() - started
        await _await_verdicts(store, children, report, stall_s, every_s, say)
        await _check_dead_letters(settings, report, say)
        await _check_index(store, report, stall_s)
        home = Corpus(seed, clock_ms, couriers=1).homes[0]  # a point well inside the service area
        await _check_good_ping(settings, system, report, home)
    children.sample()
    report.exits = [
        exit if count == 1 else f"{exit} (×{count})"
        for exit, count in sorted(collections.Counter(children.exits.values()).items())
    ]
    report.restarts = dict(getattr(system, "restarts", {}))  # LocalSystem's supervision, where it has one
    report.cpu_children_s = children.cpu_by_role()
    report.cpu_self_s = cpu_seconds(os.getpid()) - cpu_before
    report.seconds = time.monotonic() - started
    _judge(report)
    return report


async def _produce(
    settings: Settings,
    store: Store,
    children: _Children,
    report: Report,
    kinds: dict[str, float] | None,
    every_s: float,
    say: Callable[[str], None],
) -> None:
    stream = corpus_payloads(report.seed, clock_ms, kinds=kinds)
    pending: collections.deque[list[asyncio.Future]] = collections.deque()
    produced, last_line, last_count = 0, time.monotonic(), 0
    bootstrap = running(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    async with Producer(settings) as producer, RawProducer(bootstrap, idempotent=settings.kafka_idempotence) as raw:
        partitions = await raw.partitions(settings.location_topic)
        while produced < report.payloads:
            chunk = list(itertools.islice(stream, min(CHUNK, report.payloads - produced)))
            report.by_kind.update(payload.kind for payload in chunk)
            futures = await producer.send_many(
                settings.location_topic,
                [
                    OutRecord(p.value, p.key, cast(Headers, p.headers), _partition(p.key, partitions))  # names: str
                    for p in chunk
                    if not p.raw_header_names
                ],
            )
            # Header names aiokafka can't encode go in hand-built batches, one record each: a consumer that
            # can't parse a record can't parse the rest of its batch either, and the rest should be judged
            # on what they hold.
            for index, payload in enumerate(p for p in chunk if p.raw_header_names):
                futures.append(
                    await raw.send(
                        settings.location_topic, (produced + index) % partitions, [payload.record], clock_ms()
                    )
                )
            pending.append(futures)
            if len(pending) > IN_FLIGHT:
                await asyncio.gather(*pending.popleft())
            produced += len(chunk)
            now = time.monotonic()
            if now - last_line >= every_s:
                counters = await store.counters()
                children.sample()
                say(
                    f"produced {produced:,}/{report.payloads:,} ({(produced - last_count) / (now - last_line):,.0f}/s)"
                    f" · accounted {sum(counters.get(n, 0) for n in VERDICTS):,}"
                )
                last_line, last_count = now, produced
        await asyncio.gather(*itertools.chain.from_iterable(pending))


def _partition(key: bytes | None, partitions: int) -> int | None:
    """None (the producer's murmur2 rule) for ordinary keys. Hostile keys of many KiB get a CRC-32 instead:
    aiokafka's murmur2 is pure Python (~3 ms for 10 KiB) and would make this generator the bottleneck."""
    return None if key is None or len(key) <= 1024 else zlib.crc32(key) % partitions


async def _await_verdicts(
    store: Store, children: _Children, report: Report, stall_s: float, every_s: float, say: Callable[[str], None]
) -> None:
    """Until the counters account for every payload, or they stop moving for ``stall_s``."""
    last_total, last_move, last_line, line_total = -1, time.monotonic(), 0.0, 0
    while True:
        report.counters = await store.counters()
        children.sample()
        total, now = report.accounted, time.monotonic()
        if total != last_total:
            last_total, last_move = total, now
        if now - last_line >= every_s or total >= report.payloads:
            rate = (total - line_total) / (now - last_line) if last_line else 0.0
            say(
                f"produced {report.payloads:,} · accounted {total:,} ({rate:,.0f}/s) · "
                + " · ".join(f"{name} {report.counters.get(name, 0):,}" for name in VERDICTS)
            )
            last_line, line_total = now, total
        if total >= report.payloads:
            return
        if now - last_move > stall_s:
            say(f"no verdict for {stall_s:g} s; {report.payloads - total:,} payloads unaccounted for")
            return
        await asyncio.sleep(0.25)


async def _check_dead_letters(
    settings: Settings, report: Report, say: Callable[[str], None], idle_s: float = 3.0, timeout_s: float = 300.0
) -> None:
    """Read the whole DLQ topic (no end offsets: stop once every rejection is there, or nothing arrives)."""
    wanted = report.counters.get(c.C_REJECTED, 0)
    seen: dict[tuple[int, int], str] = {}
    unreadable = without_reason = 0
    async with Consumer(settings, [settings.dlq_topic], group_id=None, start="earliest") as consumer:
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            polled = await consumer.poll(timeout_ms=200)
            for records in polled.values():
                quiet_since = time.monotonic()
                for record in records:
                    report.dead_letters += 1
                    headers = dict(record.headers)
                    reason = headers.get(c.H_REASON)
                    partition, offset = headers.get(c.H_ORIGINAL_PARTITION), headers.get(c.H_ORIGINAL_OFFSET)
                    if not reason or partition is None or offset is None:
                        # A dead letter of an unreadable ping carries the ping's tracker.unreadable header and
                        # its own dlq.* ones; one the client can't read itself comes back with that header only.
                        if c.H_UNREADABLE in headers:
                            unreadable += 1
                        else:
                            without_reason += 1
                        continue
                    seen.setdefault((int(partition), int(offset)), reason.decode("utf-8", "replace"))
            if len(seen) >= wanted and wanted:
                break
    report.dead_letters_distinct = len(seen)
    report.dead_letters_by_reason = collections.Counter(seen.values())
    if unreadable:
        report.failures.append(f"{unreadable:,} dead letters could not be read by the Kafka client")
    if without_reason:
        report.failures.append(f"{without_reason:,} dead letters lack dlq.reason or their original offset")
    say(f"dead-letter topic: {report.dead_letters:,} records, {len(seen):,} distinct pings")


async def _check_index(store: Store, report: Report, wait_s: float) -> None:
    """The review index (the gateway's DLQ indexer) counts every dead letter, once it has caught up."""
    index = DlqIndex(store)
    deadline = time.monotonic() + wait_s
    while True:
        report.index_total = (await index.stats())["total"]
        if report.index_total >= report.counters.get(c.C_REJECTED, 0) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


async def _check_good_ping(
    settings: Settings, system: LocalSystem, report: Report, where: tuple[float, float], timeout_s: float = 30.0
) -> None:
    partner_id = f"fuzz-after-{uuid.uuid4().hex[:8]}"
    body = {"partner_id": partner_id, "lat": where[0], "lon": where[1], "ts": clock_ms(), "accuracy": 10.0}
    sent = time.monotonic()
    async with Producer(settings) as producer:
        await asyncio.gather(
            *await producer.send_many(
                settings.location_topic, [OutRecord(json.dumps(body).encode(), partner_id.encode())]
            )
        )
    url = f"{system.base_url}/api/couriers/{urllib.parse.quote(partner_id)}"
    while time.monotonic() - sent < timeout_s:
        if await asyncio.to_thread(_http_status, url) == 200:
            report.good_ping_s = time.monotonic() - sent
            return
        await asyncio.sleep(0.2)


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _judge(report: Report) -> None:
    """Everything that falls short of "every payload got a verdict and nothing stopped", one line each."""
    failures = report.failures
    counters, rejected = report.counters, report.counters.get(c.C_REJECTED, 0)
    if report.accounted != report.payloads:
        failures.insert(
            0,
            f"accounting: produced {report.payloads:,} != accepted {counters.get('accepted', 0):,} + "
            f"rejected {rejected:,} + duplicates {counters.get('duplicates', 0):,} "
            f"(= {report.accounted:,})",
        )
    if report.dead_letters_distinct != rejected:
        failures.append(
            f"dead-letter topic holds {report.dead_letters_distinct:,} distinct rejected pings, "
            f"the counters say {rejected:,}"
        )
    for reason in sorted(
        {name.split(":", 1)[1] for name in counters if name.startswith(c.C_REJECTED_BY)}
        | set(report.dead_letters_by_reason)
    ):
        counted, lettered = counters.get(c.C_REJECTED_BY + reason, 0), report.dead_letters_by_reason.get(reason, 0)
        if counted != lettered:
            failures.append(f"{reason}: {counted:,} counted, {lettered:,} in the dead-letter topic")
    if report.index_total != rejected:
        failures.append(f"review index counts {report.index_total} dead letters, the counters say {rejected:,}")
    failures.extend(f"child process: {exit}" for exit in report.exits)
    restarted = {name: count for name, count in report.restarts.items() if count}
    if restarted:
        failures.append("restarts: " + ", ".join(f"{name} {count}" for name, count in sorted(restarted.items())))
    if report.good_ping_s is None:
        failures.append("a good ping produced after the fuzz did not reach the map (GET /api/couriers/{id})")


def parse_kinds(text: str | None) -> dict[str, float] | None:
    """``--kinds deep_nesting,huge_number``: only those (with their usual shares)."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return {name: KINDS[name] for name in names}


def run(
    payloads: int, seed: int, *, validators: int = 2, kinds: dict[str, float] | None = None, stall_s: float = 60.0
) -> Report:
    """The whole run: embedded services (unless configured), topics in a fresh namespace, the system, the fuzz."""
    base = Settings.from_env()
    stack = EmbeddedStack(base)  # starts only what KAFKA_BOOTSTRAP_SERVERS / REDIS_URL do not name
    with stack as infra:
        settings = infra.replace(
            namespace=f"fuzz{uuid.uuid4().hex[:8]}.",
            http_port=free_port(),
            replay_secret=infra.replay_secret or secrets.token_urlsafe(32),
        )
        progress(
            f"Kafka {settings.kafka_bootstrap_servers}, Redis {settings.redis_url}, namespace {settings.namespace}"
        )
        asyncio.run(ensure_topics(settings))
        system = LocalSystem(settings, stack.run_dir, validators=validators)
        system.start()
        if hasattr(system, "start_supervisor"):  # restart children as `tracker up` does; restarts then fail the run
            system.start_supervisor()
        progress(f"gateway {system.base_url} and {validators} validators up; logs in {stack.run_dir}")
        try:
            return asyncio.run(
                fuzz_live(system.settings, system, payloads=payloads, seed=seed, kinds=kinds, stall_s=stall_s)
            )
        finally:
            system.stop()
