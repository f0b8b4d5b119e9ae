"""``tracker simulate``: flags, a live progress line on stderr, a one-line JSON summary on stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import msgspec

from simulator.config import SimConfig
from simulator.faults import FaultKind
from simulator.fleet import DEFAULT_ID_PREFIX, partner_id_for
from simulator.orders import DemoOrders
from simulator.phones import PhoneProtocol
from simulator.run import SimStats, run_simulation
from simulator.via_ingest import DEFAULT_CONCURRENCY, IngestRefused, IngestTarget, missing_tokens, run_via_ingest
from tracker.kafka import Producer, ensure_topics
from tracker.settings import Settings
from tracker.signals import install_stop_handlers

KINDS = ", ".join(kind.value for kind in FaultKind)


def _number(kind: type, low: float, *, low_open: bool = False, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: ``kind`` within [low, high] (or (low, high] with ``low_open``), one-line errors."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value != value or value < low or (low_open and value == low) or (high is not None and value > high):
            if high is not None:
                raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
            raise argparse.ArgumentTypeError(f"must be {'above' if low_open else 'at least'} {low:g}, got {text}")
        return value

    return parse


_share = _number(float, 0, high=1)


def _fault(text: str) -> tuple[FaultKind, float]:
    name, sep, rate = text.partition("=")
    try:
        kind = FaultKind(name.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown fault kind {name.strip()!r}; kinds: {KINDS}") from None
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=RATE, got {text!r}")
    return kind, _share(rate)


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"expected the ingest's http:// or https:// URL (no query), got {text!r}")
    return text


def _protocol(text: str) -> PhoneProtocol:
    try:
        return PhoneProtocol(text)
    except ValueError:
        names = ", ".join(protocol.value for protocol in PhoneProtocol)
        raise argparse.ArgumentTypeError(f"unknown protocol {text!r}; protocols: {names}") from None


def _tokens(path: str) -> dict[str, str]:
    """--tokens FILE: a JSON object of courier id -> token (the tokens `tracker devices add` printed)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise argparse.ArgumentTypeError(f"can't read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{path} is not JSON: {error}") from None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise argparse.ArgumentTypeError(f"{path} must hold a JSON object of courier id -> token (strings)")
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--couriers", type=_number(int, 1), default=300, help="couriers (default 300)")
    parser.add_argument(
        "--interval",
        type=_number(float, 0.001),
        default=1.0,
        metavar="SECONDS",
        help="seconds between two pings of a courier, ±10%% (default 1)",
    )
    parser.add_argument(
        "--duration",
        type=_number(float, 0, low_open=True),
        metavar="SECONDS",
        help="stop after this much event time (in --burst mode: virtual time covered)",
    )
    parser.add_argument("--count", type=_number(int, 1), metavar="N", help="stop after N pings")
    parser.add_argument(
        "--bad-rate",
        type=_share,
        default=0.05,
        metavar="SHARE",
        help="share of pings the validator must reject, split evenly over the fault kinds "
        "(default 0.05; 0 turns faults off)",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"fix one kind's share of all pings (repeatable); kinds: {KINDS}",
    )
    parser.add_argument(
        "--duplicate-rate",
        type=_share,
        default=0.01,
        metavar="SHARE",
        help="share of pings that are exact resends of the courier's last good ping (default 0.01)",
    )
    parser.add_argument("--seed", type=_number(int, 0), help="seed for couriers, routes and faults (default: random)")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="produce as fast as possible; event time is virtual and ends now (needs --count or "
        "--duration; keep rounds x interval under the validator's max age)",
    )
    parser.add_argument(
        "--rate",
        type=_number(float, 0, low_open=True),
        metavar="PINGS_PER_S",
        help="cap on pings sent per second (in real-time mode a cap below couriers/interval makes pings late)",
    )
    parser.add_argument(
        "--linger-ms",
        type=_number(float, 0, high=1000),
        default=20.0,
        metavar="MS",
        help="real-time mode: gather the pings due within this window into one produce request, "
        "like Kafka's linger.ms (default 20; 0 sends each ping when due)",
    )
    parser.add_argument(
        "--id-prefix",
        default=DEFAULT_ID_PREFIX,
        metavar="PREFIX",
        help=f"courier ids are PREFIX and a number (default {DEFAULT_ID_PREFIX!r}: {partner_id_for(0)}, ...); "
        "another prefix makes a second simulator's couriers its own",
    )
    parser.add_argument(
        "--track-orders",
        type=_number(int, 0, high=100),
        default=0,
        metavar="N",
        help="keep N demo orders with tracking links registered for couriers near their drop-off "
        "(needs REDIS_URL and TRACKER_TRACKING_SECRET; simulator/orders.py)",
    )
    parser.add_argument("--tracking-links", metavar="FILE", help="append each demo order's /track/<token> path here")
    door = parser.add_argument_group("through the ingest (instead of straight to Kafka)")
    door.add_argument(
        "--via-ingest",
        type=_url,
        metavar="URL",
        help="post the fixes to `tracker ingest` at URL, as phones do (e.g. http://127.0.0.1:5055); only the "
        "fault kinds a phone protocol can carry are drawn",
    )
    door.add_argument(
        "--protocol",
        type=_protocol,
        metavar="{" + ",".join(p.value for p in PhoneProtocol) + "}",
        help="the phone app's protocol (default osmand: Traccar Client / OsmAnd)",
    )
    door.add_argument(
        "--tokens",
        type=_tokens,
        metavar="FILE",
        help="JSON object of courier id -> device token (from `tracker devices add`); without it no "
        "credentials are sent (for an ingest with TRACKER_INGEST_AUTH=open)",
    )
    door.add_argument(
        "--concurrency",
        type=_number(int, 1),
        metavar="N",
        help=f"requests in flight at most (default {DEFAULT_CONCURRENCY})",
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The run's config; ValueError (one line) for combinations no single flag can check."""
    return SimConfig(
        couriers=args.couriers,
        interval_s=args.interval,
        duration_s=args.duration,
        count=args.count,
        bad_rate=args.bad_rate,
        fault_rates=dict(args.fault),
        duplicate_rate=args.duplicate_rate,
        seed=args.seed,
        burst=args.burst,
        rate=args.rate,
        linger_ms=args.linger_ms,
        id_prefix=args.id_prefix,
        via_ingest=args.via_ingest is not None,
    ).checked()


def target_from_args(args: argparse.Namespace, config: SimConfig) -> IngestTarget | None:
    """Where --via-ingest sends (None: straight to Kafka); ValueError (one line) for flags that don't fit."""
    if args.via_ingest is None:
        given = [flag for flag in ("protocol", "tokens", "concurrency") if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--{given[0]} needs --via-ingest URL")
        return None
    if args.tokens is not None:
        missing = missing_tokens(args.tokens, [partner_id_for(i, config.id_prefix) for i in range(config.couriers)])
        if missing:
            raise ValueError(
                f"--tokens has no token for {len(missing):,} of the {config.couriers:,} couriers "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): `tracker devices add ID` "
                "prints one"
            )
    return IngestTarget(
        args.via_ingest,
        args.protocol or PhoneProtocol.OSMAND,
        args.tokens,
        args.concurrency or DEFAULT_CONCURRENCY,
    )


def format_progress(stats: SimStats, pings_per_s: float) -> str:
    bad_share = stats.bad / stats.produced if stats.produced else 0.0
    unsent = f" | retries {stats.retries:,}" if stats.retries else ""
    if stats.unsent:  # what the producer gave up on, with the error that cost the most pings
        reason = max(stats.unsent_by_reason.items(), key=lambda item: item[1])[0].partition(":")[0]
        unsent += f" | unsent {stats.unsent:,} ({reason})"
    return (
        f"sent {stats.produced:,} | {pings_per_s:,.0f} pings/s | bad {stats.bad:,} ({bad_share:.1%}) | "
        f"duplicates {stats.duplicates:,}{unsent} | {stats.elapsed_s:.0f} s"
    )


class ProgressLine:
    """Live progress: on a terminal one line rewritten ~2x/s; otherwise (logs, pipes) a line every 5 s."""

    def __init__(
        self, stream: TextIO, clock: Callable[[], float] = time.monotonic, waiting_for: str = "the broker"
    ) -> None:
        self.stream = stream
        self.waiting_for = waiting_for
        self.clock = clock
        self.tty = stream.isatty()
        self.every_s = 0.5 if self.tty else 5.0
        self.shown_at: float | None = None
        self.shown_produced = 0
        self.latest: SimStats | None = None

    def waiting(self, seconds: float) -> None:
        """A batch has waited ``seconds`` for the broker's ack: say so, at the usual pace, instead of going quiet."""
        now = self.clock()
        if self.shown_at is not None and now - self.shown_at < self.every_s:
            return
        self.shown_at = now
        if self.latest is None:
            self._write(f"waiting {seconds:.0f} s for {self.waiting_for}'s first ack")
            return
        self.shown_produced = self.latest.produced
        self._write(f"{format_progress(self.latest, 0.0)} | waiting {seconds:.0f} s for {self.waiting_for}")

    def __call__(self, stats: SimStats) -> None:
        self.latest = stats
        now = self.clock()
        if self.shown_at is None:
            self.shown_at = now - stats.elapsed_s
        if now - self.shown_at < self.every_s:
            return
        # Rate over the last window, not the whole run: a stall shows up at once.
        rate = (stats.produced - self.shown_produced) / (now - self.shown_at)
        self.shown_at, self.shown_produced = now, stats.produced
        self._write(format_progress(stats, rate))

    def finish(self, stats: SimStats) -> None:
        self._write(format_progress(stats, stats.pings_per_s))
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _write(self, line: str) -> None:
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Produce until ``--count``/``--duration`` or SIGINT/SIGTERM (the batch in flight finishes; twice: exit now)."""
    config = config_from_args(args)
    target = target_from_args(args, config)
    stop = asyncio.Event()
    install_stop_handlers(asyncio.get_running_loop(), stop)
    progress = ProgressLine(sys.stderr, waiting_for="the broker" if target is None else "the ingest")
    if target is not None:
        try:
            stats = await run_via_ingest(settings, config, target, progress, stop, progress.waiting)
        except IngestRefused as refused:
            if progress.tty:
                sys.stderr.write("\n")
            print(f"tracker simulate: {refused}", file=sys.stderr, flush=True)
            return 1
    else:
        await ensure_topics(settings)
        demo = DemoOrders(settings, args.track_orders, Path(args.tracking_links) if args.tracking_links else None)
        registering = asyncio.create_task(demo.run(stop)) if args.track_orders else None
        try:
            async with Producer(settings) as producer:
                stats = await run_simulation(
                    settings,
                    config,
                    producer,
                    progress=progress,
                    stop=stop,
                    waiting=progress.waiting,
                    on_fleet=lambda fleet: demo.attach(fleet.couriers, fleet.grid),
                )
        finally:
            if registering is not None:
                registering.cancel()
    progress.finish(stats)
    print(msgspec.json.encode(stats).decode(), flush=True)
    return 0
