"""``tracker simulate``: flags, progress output, and the Kafka loop against an in-memory producer."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from typing import cast

import msgspec
import pytest

from simulator.cli import ProgressLine, add_arguments, config_from_args, format_progress
from simulator.config import SimConfig
from simulator.faults import DUPLICATE, FaultKind
from simulator.run import SimStats, run_simulation
from tests.helpers import value_of
from tracker.constants import H_SIM_EXPECT
from tracker.kafka import Producer
from tracker.models import OutRecord
from tracker.settings import Settings

SETTINGS = Settings()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tracker simulate")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_become_a_config():
    args = parse(
        "--couriers",
        "50",
        "--interval",
        "0.5",
        "--count",
        "1000",
        "--bad-rate",
        "0.2",
        "--fault",
        "out_of_order=0.1",
        "--fault",
        "stale_timestamp=0",
        "--duplicate-rate",
        "0.02",
        "--seed",
        "9",
        "--burst",
        "--rate",
        "5000",
        "--linger-ms",
        "5",
    )
    assert config_from_args(args) == SimConfig(
        couriers=50,
        interval_s=0.5,
        count=1000,
        bad_rate=0.2,
        duplicate_rate=0.02,
        seed=9,
        burst=True,
        rate=5000.0,
        linger_ms=5.0,
        fault_rates={FaultKind.OUT_OF_ORDER: 0.1, FaultKind.STALE_TIMESTAMP: 0.0},
    )


def test_defaults_are_the_documented_ones():
    assert config_from_args(parse()) == SimConfig()
    assert (SimConfig().couriers, SimConfig().interval_s, SimConfig().bad_rate, SimConfig().duplicate_rate) == (
        300,
        1.0,
        0.05,
        0.01,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--bad-rate", "1.5"), "argument --bad-rate: must be between 0 and 1, got 1.5"),
        (("--bad-rate", "lots"), "argument --bad-rate: expected a number, got 'lots'"),
        (("--duplicate-rate", "-0.1"), "argument --duplicate-rate: must be between 0 and 1"),
        (("--couriers", "0"), "argument --couriers: must be at least 1, got 0"),
        (("--couriers", "2.5"), "argument --couriers: expected a whole number, got '2.5'"),
        (("--interval", "0"), "argument --interval: must be at least 0.001"),
        (("--duration", "0"), "argument --duration: must be above 0"),
        (("--rate", "nan"), "argument --rate: must be above 0"),
        (("--linger-ms", "-1"), "argument --linger-ms: must be between 0 and 1000, got -1"),
        (("--fault", "gremlins=0.1"), "unknown fault kind 'gremlins'; kinds: malformed_payload, "),
        (("--fault", "out_of_order"), "expected KIND=RATE"),
        (("--fault", "out_of_order=3"), "argument --fault: must be between 0 and 1, got 3"),
    ],
)
def test_bad_flag_values_are_one_line_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in last_line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--burst",), "--burst needs --count or --duration"),
        (("--bad-rate", "0.6", "--duplicate-rate", "0.3"), "must not exceed 1"),
    ],
)
def test_flag_combinations_are_checked_too(argv, message):
    with pytest.raises(ValueError, match=message):
        config_from_args(parse(*argv))


STATS = SimStats(
    produced=12_345,
    good=11_600,
    bad=617,
    duplicates=128,
    bad_by_reason={"out_of_order": 617},
    elapsed_s=6.02,
    pings_per_s=2050.7,
    seed=1,
)


def test_progress_line_says_what_was_sent_how_fast_and_how_much_was_bad():
    assert format_progress(STATS, 2050.7) == "sent 12,345 | 2,051 pings/s | bad 617 (5.0%) | duplicates 128 | 6 s"


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(("tty", "every_s", "ending"), [(True, 0.5, "\x1b[K"), (False, 5.0, "\n")])
def test_progress_is_rewritten_in_place_on_a_terminal_and_throttled_elsewhere(tty, every_s, ending):
    now = [100.0]
    stream = FakeTerminal(tty)
    progress = ProgressLine(stream, clock=lambda: now[0])
    for step in range(1, 81):  # 10 s of batches every 0.125 s
        now[0] += 0.125
        progress(msgspec.structs.replace(STATS, produced=1_250 * step, elapsed_s=0.125 * step))
    writes = stream.getvalue().split("\r") if tty else stream.getvalue().splitlines(keepends=True)
    writes = [write for write in writes if write]
    assert 10 / every_s - 2 <= len(writes) <= 10 / every_s
    assert all(write.endswith(ending) for write in writes)
    assert "10,000 pings/s" in writes[-1]


class MemoryProducer:
    """Stands in for tracker.kafka.Producer: records what was sent and when, acks on the next turn of the loop.

    ``batches`` counts produce requests: everything queued before an ack is awaited goes in one, as
    aiokafka's sender sends whatever is ready for a broker together.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, OutRecord, int]] = []
        self.batches = 0
        self.unacked = 0
        self.flushed = False

    async def partition_count(self, topic):
        return SETTINGS.location_partitions

    async def send_many(self, topic, records):
        sent_at_ms = time.time_ns() // 1_000_000
        self.sent.extend((topic, record, sent_at_ms) for record in records)
        if not self.unacked:
            self.batches += 1
        self.unacked += 1
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ack() -> None:
            self.unacked -= 1
            done.set_result(None)

        loop.call_soon(ack)
        return [done]

    async def flush(self) -> None:
        self.flushed = True


async def test_a_burst_run_produces_count_pings_and_accounts_for_every_one():
    producer = MemoryProducer()
    stats = await run_simulation(
        SETTINGS, SimConfig(couriers=200, count=5_000, burst=True, bad_rate=0.1, seed=3), cast(Producer, producer)
    )
    assert stats.produced == len(producer.sent) == 5_000
    assert stats.produced == stats.good + stats.bad + stats.duplicates
    assert stats.bad == sum(stats.bad_by_reason.values())
    expected: dict[str, int] = {}
    for topic, record, _ in producer.sent:
        assert topic == SETTINGS.location_topic
        header = dict(record.headers).get(H_SIM_EXPECT)
        if header is not None:
            expected[header.decode()] = expected.get(header.decode(), 0) + 1
    assert expected == {**stats.bad_by_reason, DUPLICATE: stats.duplicates}
    assert stats.seed == 3 and producer.flushed and stats.pings_per_s > 0


async def test_a_run_without_a_seed_reports_the_seed_that_reproduces_it():
    unseeded, reseeded = MemoryProducer(), MemoryProducer()
    stats = await run_simulation(
        SETTINGS, SimConfig(couriers=50, count=500, burst=True, bad_rate=0.2), cast(Producer, unseeded)
    )
    await run_simulation(
        SETTINGS, SimConfig(couriers=50, count=500, burst=True, bad_rate=0.2, seed=stats.seed), cast(Producer, reseeded)
    )
    assert [(r.key, r.headers) for _, r, _ in unseeded.sent] == [(r.key, r.headers) for _, r, _ in reseeded.sent]


async def test_real_time_pings_are_stamped_with_the_wall_clock_when_sent():
    producer = MemoryProducer()
    started = time.monotonic()
    stats = await run_simulation(
        SETTINGS, SimConfig(couriers=20, interval_s=0.1, duration_s=1.0, seed=4), cast(Producer, producer)
    )
    assert 0.9 <= time.monotonic() - started <= 1.5
    assert 170 <= stats.produced <= 240
    for _, record, sent_at_ms in producer.sent:
        if record.headers == ():
            assert abs(json.loads(value_of(record))["ts"] - sent_at_ms) < 100


class LoopLag:
    """The longest the event loop ran late while the block ran: a 5 ms sleep's overshoot, sampled throughout.

    A wall-clock bound on when a ping went out holds on a quiet machine; on a loaded one (CI shares two cores
    with a broker) the loop itself wakes late, and the simulator cannot send earlier than its loop runs. The
    bounds below allow exactly that measured lateness on top of the simulator's own.
    """

    def __init__(self) -> None:
        self.max_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.005)
            self.max_ms = max(self.max_ms, (time.monotonic() - started - 0.005) * 1000)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._probe())
        await asyncio.sleep(0)  # the probe's first sleep starts now, not at the block's first await
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.parametrize("linger_ms", [0.0, 50.0])
async def test_real_time_pings_due_within_the_linger_window_go_in_one_request(linger_ms):
    producer = MemoryProducer()
    config = SimConfig(
        couriers=20, interval_s=0.1, duration_s=1.0, bad_rate=0, duplicate_rate=0, seed=4, linger_ms=linger_ms
    )
    async with LoopLag() as lag:
        stats = await run_simulation(SETTINGS, config, cast(Producer, producer))
    lateness = [sent_at_ms - json.loads(value_of(record))["ts"] for _, record, sent_at_ms in producer.sent]
    assert min(lateness) >= 0  # never before it is due
    if linger_ms:
        assert producer.batches <= 1.0 / 0.05 + 2  # one request per window, ~10 pings each
        # Late by the window at most, plus a little work, plus however late the loop itself ran.
        assert max(lateness) <= linger_ms + 40 + lag.max_ms
    else:
        assert producer.batches >= stats.produced / 3  # each ping about when it falls due


async def test_the_stop_event_ends_the_run_after_the_batch_in_flight():
    producer, stop = MemoryProducer(), asyncio.Event()
    stats = await run_simulation(
        SETTINGS,
        SimConfig(couriers=100, count=100_000, burst=True, seed=5),
        cast(Producer, producer),
        progress=lambda stats: stop.set(),
        stop=stop,
    )
    assert producer.batches == 1
    assert stats.produced == len(producer.sent) == 2_000


async def test_the_rate_cap_paces_sending():
    producer = MemoryProducer()
    stats = await run_simulation(
        SETTINGS, SimConfig(couriers=50, count=1_000, burst=True, rate=2_000.0, seed=6), cast(Producer, producer)
    )
    assert stats.produced == 1_000
    assert 0.45 <= stats.elapsed_s <= 1.0
    assert producer.batches >= 10  # small batches, ~20 a second, not one burst
