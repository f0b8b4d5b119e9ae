"""The ``tracker`` command. Each subcommand lives in a small ``run_*`` function; errors are one line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import msgspec

from tracker import __version__
from tracker.settings import Settings, SettingsError
from tracker.signals import install_stop_handlers
from tracker.tokens import is_loopback

log = logging.getLogger("tracker")


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connections (override KAFKA_BOOTSTRAP_SERVERS / REDIS_URL)")
    group.add_argument("--bootstrap-servers", dest="kafka_bootstrap_servers", metavar="HOST:PORT[,...]")
    group.add_argument("--redis-url", dest="redis_url", metavar="URL")
    group.add_argument(
        "--namespace",
        dest="namespace",
        metavar="PREFIX",
        help="prefix for topics, groups and Redis keys (default: none)",
    )


def _settings(args: argparse.Namespace, **extra) -> Settings:
    overrides = {name: getattr(args, name, None) for name in ("kafka_bootstrap_servers", "redis_url", "namespace")}
    return Settings.from_env().replace(**overrides, **extra)


def _require(settings: Settings, *, kafka: bool = True, redis: bool = True) -> None:
    if kafka and not settings.kafka_bootstrap_servers:
        raise UsageError(
            "KAFKA_BOOTSTRAP_SERVERS is not set (or pass --bootstrap-servers); `tracker up` starts an embedded broker"
        )
    if redis and not settings.redis_url:
        raise UsageError("REDIS_URL is not set (or pass --redis-url); `tracker up` starts an embedded Redis")


def _check_partitions(settings: Settings) -> None:
    """Refuse to start when ``location-updates`` has another partition count than TRACKER_LOCATION_PARTITIONS
    (:func:`tracker.kafka.partition_mismatch`). A broker that cannot be asked now leaves it unchecked: the
    process's own retries deal with a broker that is still starting."""
    from tracker.kafka import BrokerError, describe_topics, partition_mismatch

    try:
        counts = asyncio.run(asyncio.wait_for(describe_topics(settings), settings.startup_timeout_s))
    except (BrokerError, TimeoutError, OSError) as exc:
        log.warning("could not read the topics' partition counts (%r); not checked", exc)
        return
    problem = partition_mismatch(settings, counts)
    if problem is not None:
        raise UsageError(problem)


class _OncePerInterval(logging.Filter):
    """Lets a repeated aiokafka message through once per ``interval_s`` (aiokafka logs a failed connection every
    ~100 ms while a broker is down), then says how many repeats it swallowed."""

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.seen: dict[str, list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        if not record.name.startswith("aiokafka"):
            return True
        key = f"{record.name}:{record.msg}"[:200]
        now = time.monotonic()
        last = self.seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            last[1] += 1
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} (and {last[1]} more like it in the last {self.interval_s:g} s)"
        self.seen[key] = [now, 0]
        if len(self.seen) > 1000:
            self.seen.clear()
        return True


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:  # logger filters would miss aiokafka's child loggers
        handler.addFilter(_OncePerInterval())


# -- validate ------------------------------------------------------------------------------------------


def _validate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        metavar="FILE",
        help="read raw payloads, one per line ('-' for stdin), print one verdict per line; no broker or Redis",
    )
    parser.add_argument("--now", type=_int, metavar="EPOCH_MS", help="fix the validator clock (epoch ms)")
    parser.add_argument(
        "--until-idle",
        type=_positive_float,
        metavar="SECONDS",
        help="exit once the topic has been quiet this long (burst mode)",
    )
    parser.add_argument("--max-age", type=_positive_float, dest="max_age_s", metavar="SECONDS")
    parser.add_argument("--max-skew", type=_positive_float, dest="max_skew_s", metavar="SECONDS")
    parser.add_argument("--service-area", dest="service_area_file", metavar="GEOJSON")
    parser.add_argument("--validator-id", dest="validator_id", metavar="ID")
    _connection_args(parser)


def _freeze_startup_objects() -> None:
    """Move everything imported so far out of the cyclic GC's reach (``gc.freeze``).

    The long-running processes hold ~10^5 objects from imports that never become garbage; left in the
    oldest generation, every full collection walks them again, a pause of tens of milliseconds in the
    middle of the pipeline. The hot path's own structs are untracked (``gc=False``, see models.py).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def run_validate(args: argparse.Namespace) -> int:
    from tracker.geo import load_service_area

    settings = _settings(
        args,
        max_age_s=args.max_age_s,
        max_skew_s=args.max_skew_s,
        service_area_file=args.service_area_file,
        validator_id=args.validator_id,
    )
    area = load_service_area(settings.service_area_file)
    clock_ms = (lambda: args.now) if args.now is not None else None
    if args.dry_run is not None:
        return _dry_run(settings, area, args.dry_run, clock_ms)
    _require(settings)
    _setup_logging(settings)
    _check_partitions(settings)
    from tracker.validator import run_validator

    _freeze_startup_objects()

    async def main() -> int:
        stop = asyncio.Event()
        install_stop_handlers(asyncio.get_running_loop(), stop)
        try:
            totals = await run_validator(settings, area, stop, idle_exit_s=args.until_idle, clock_ms=clock_ms)
        except Exception:
            # Not a bad flag or setting: a crash. Its log gets the traceback; nothing was committed that is
            # not applied, so the next owner of its partitions carries on (README, "Guarantees").
            log.exception("the validator stopped")
            raise
        print(msgspec.json.encode(dict(sorted(totals.items()))).decode(), flush=True)
        return 0

    return asyncio.run(main())


def _dry_run(settings: Settings, area, source: str, clock_ms: Callable[[], int] | None) -> int:
    import time

    from tracker.rules import StatefulChecker

    checker = StatefulChecker(settings, area)
    now = clock_ms or (lambda: time.time_ns() // 1_000_000)
    try:
        # Closed by the `with stream:` below; opened here so that only open()'s error is a usage error.
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"--dry-run {source}: {exc.strerror}") from None
    out = sys.stdout
    with stream:
        for line in stream:
            verdict = checker.check(line.rstrip(b"\r\n"), now())
            row: dict[str, str] = {"verdict": verdict.outcome.value}
            if verdict.reason is not None:
                row["reason"] = verdict.reason.value
                row["detail"] = verdict.detail
            out.write(msgspec.json.encode(row).decode() + "\n")
    out.flush()
    return 0


# -- simulate ------------------------------------------------------------------------------------------


def _simulate_args(parser: argparse.ArgumentParser) -> None:
    from simulator.cli import add_arguments

    add_arguments(parser)
    _connection_args(parser)


def run_simulate(args: argparse.Namespace) -> int:
    from simulator.cli import run

    settings = _settings(args)
    _require(settings, kafka=args.via_ingest is None, redis=False)  # --via-ingest posts to the ingest over HTTP
    _setup_logging(settings)
    return asyncio.run(run(args, settings))


# -- gateway -------------------------------------------------------------------------------------------


def _gateway_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", dest="http_host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=_int, dest="http_port", help="port (default 8000)")
    parser.add_argument("--tick-ms", type=_int, dest="tick_ms", help="frame interval in ms (default 200)")
    parser.add_argument(
        "--workers",
        type=_int,
        dest="gateway_workers",
        help="gateway processes sharing the port, with one relay reading the positions for them (default 1; "
        "about one per core)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by --workers N
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)  # ... and its positions relay
    _connection_args(parser)


def gateway_server_config(app, settings: Settings):
    """The gateway's uvicorn settings (bench/fanout.py's baseline server uses them too)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        # X-Forwarded-For is believed only from TRACKER_TRUSTED_PROXIES (tracker/tokens.py), never by default:
        # uvicorn's own handling would trust it from any local process.
        proxy_headers=False,
        server_header=False,
        # the sans-I/O protocol: the same frames as the legacy one for ~10 % less CPU per frame sent (BENCHMARKS.md,
        # fan-out), and no second drain of one socket by the keepalive ping while a frame waits to go out
        ws="websockets-sansio",
        lifespan="on",
        ws_max_size=64 * 1024,
        ws_per_message_deflate=settings.ws_compression,
    )


def _run_on_uvloop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed (uvicorn[standard] brings it), as the gateway's workers run:
    on asyncio's own loop the relay's writes to its workers were a fifth of its py-spy samples (no change end to
    end beyond the spread between runs: BENCHMARKS.md, fan-out notes)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _warn_if_open_gateway(host: str, viewer_token: str | None) -> None:
    """Warn on stderr when the gateway binds beyond this machine with no viewer token (README, Access)."""
    if not viewer_token and not is_loopback(host):
        print(
            f"tracker gateway: WARNING: listening on {host} with no TRACKER_VIEWER_TOKEN: anyone who "
            "can reach it can watch every courier (README, Access)",
            file=sys.stderr,
        )


def run_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from tracker import workers
    from tracker.gateway import create_app

    settings = _settings(
        args,
        http_host=args.http_host,
        http_port=args.http_port,
        tick_ms=args.tick_ms,
        gateway_workers=args.gateway_workers,
    )
    _require(settings)
    _setup_logging(settings)
    if args.relay:  # started by --workers N, with the relay's socket in TRACKER_GATEWAY_RELAY
        from tracker import relay

        if not settings.gateway_relay:
            raise UsageError("--relay needs TRACKER_GATEWAY_RELAY (the socket its workers connect to)")
        return _run_on_uvloop(relay.run(settings))
    if not args.worker:  # a worker's parent has checked and warned
        _check_partitions(settings)
        _warn_if_open_gateway(settings.http_host, settings.viewer_token)
    if settings.gateway_workers > 1 and not args.worker:
        return workers.run(settings, settings.gateway_workers)
    app = create_app(settings)
    _freeze_startup_objects()
    server = uvicorn.Server(gateway_server_config(app, settings))
    if args.worker:  # one of --workers N: the port is shared
        server.run(sockets=[workers.reuse_port_socket(settings.http_host, settings.http_port)])
    else:
        server.run()
    return 0


# -- ingest --------------------------------------------------------------------------------------------


def _events_args(parser: argparse.ArgumentParser) -> None:
    from tracker.events.cli import add_arguments

    add_arguments(parser, _connection_args)


def run_events(args: argparse.Namespace) -> int:
    from tracker.events.cli import run

    settings = _settings(args)
    _require(settings)
    _setup_logging(settings)
    return run(args, settings)


def _ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", dest="ingest_host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=_int, dest="ingest_port", help="port (default 5055)")
    parser.add_argument(
        "--auth",
        dest="ingest_auth",
        choices=("token", "open"),
        help="token: devices need a token from `tracker devices add` (default); open: any device id is taken",
    )
    _connection_args(parser)


def run_ingest(args: argparse.Namespace) -> int:
    import uvicorn

    from tracker.ingest.app import create_app

    settings = _settings(args, ingest_host=args.ingest_host, ingest_port=args.ingest_port, ingest_auth=args.ingest_auth)
    _require(settings, redis=settings.ingest_auth == "token")
    _setup_logging(settings)
    app = create_app(settings)
    _freeze_startup_objects()
    if settings.ingest_auth == "open":
        where = "on loopback only" if is_loopback(settings.ingest_host) else f"on {settings.ingest_host}"
        print(
            f"tracker ingest: WARNING: TRACKER_INGEST_AUTH=open {where}: any device id is taken without a token; "
            "anyone who can reach it can post as any courier (docs/ingest.md)",
            file=sys.stderr,
        )
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


def _devices_args(parser: argparse.ArgumentParser) -> None:
    from tracker.ingest.cli import add_arguments

    add_arguments(parser, _connection_args)


def run_devices(args: argparse.Namespace) -> int:
    from tracker.ingest.cli import run

    settings = _settings(args)
    _require(settings, kafka=False)
    return run(args, settings)


# -- dlq -----------------------------------------------------------------------------------------------


def _dlq_args(parser: argparse.ArgumentParser) -> None:
    from tracker.dlq.cli import add_arguments

    add_arguments(parser, _connection_args)


def run_dlq(args: argparse.Namespace) -> int:
    from tracker.dlq.cli import run

    settings = _settings(args)
    _require(settings, kafka=args.dlq_command == "replay")
    return run(args, settings)


# -- orders --------------------------------------------------------------------------------------------


def _orders_args(parser: argparse.ArgumentParser) -> None:
    from tracker.orders.cli import add_arguments

    add_arguments(parser, _connection_args)


def run_orders(args: argparse.Namespace) -> int:
    from tracker.orders.cli import run

    settings = _settings(args)
    _require(settings, kafka=args.orders_command == "deliver")
    return run(args, settings)


# -- topics --------------------------------------------------------------------------------------------


def _topics_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--describe", action="store_true", help="only describe, create nothing")
    _connection_args(parser)


def run_topics(args: argparse.Namespace) -> int:
    from tracker.kafka import describe_topics, ensure_topics, topic_specs

    settings = _settings(args)
    _require(settings, redis=False)
    counts = asyncio.run(describe_topics(settings) if args.describe else ensure_topics(settings))
    for topic, wanted in topic_specs(settings).items():
        have = counts.get(topic)
        state = "missing" if have is None else f"{have} partitions"
        note = "" if have in (None, wanted) else f" (settings ask for {wanted})"
        print(f"{topic:<28} {state}{note}")
    return 0 if all(topic in counts for topic in topic_specs(settings)) else 1


# -- up ------------------------------------------------------------------------------------------------


def _up_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--couriers", type=_int, default=300)
    parser.add_argument("--interval", type=_positive_float, default=1.0, help="seconds between a courier's pings")
    parser.add_argument(
        "--bad-rate",
        type=_positive_float,
        default=0.03,
        help="share of pings the simulator corrupts (default 0.03; 0 turns it off)",
    )
    parser.add_argument("--validators", type=_int, default=1, help="validator processes (default 1)")
    parser.add_argument("--no-simulator", action="store_true")
    parser.add_argument("--port", type=_int, dest="http_port", help="gateway port (default 8000)")
    parser.add_argument("--ingest-port", type=_int, dest="ingest_port", help="ingest port (default 5055)")
    _connection_args(parser)


def run_up(args: argparse.Namespace) -> int:
    from tracker.up import run_up as up

    if args.bad_rate > 1:
        raise UsageError(f"--bad-rate must be between 0 and 1, got {args.bad_rate}")
    if args.validators < 1 or args.couriers < 1:
        raise UsageError("--validators and --couriers must be at least 1")
    settings = _settings(args, http_port=args.http_port, ingest_port=args.ingest_port)
    _setup_logging(settings)
    return up(
        settings,
        couriers=args.couriers,
        interval_s=args.interval,
        bad_rate=args.bad_rate,
        validators=args.validators,
        simulator=not args.no_simulator,
    )


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "up": ("the whole system on this machine (embedded broker and Redis unless configured)", _up_args, run_up),
    "simulate": ("couriers -> location-updates", _simulate_args, run_simulate),
    "validate": ("one validator in group location-validator", _validate_args, run_validate),
    "gateway": ("HTTP + WebSocket server: the live map, the API, /metrics", _gateway_args, run_gateway),
    "ingest": ("HTTP edge phones post fixes to: OsmAnd, Traccar Client, OwnTracks, JSON", _ingest_args, run_ingest),
    "devices": ("devices that may post to the ingest: add, ls, revoke", _devices_args, run_devices),
    "events": (
        "zone and status events: courier-positions -> courier-events, and the index behind /api/events",
        _events_args,
        run_events,
    ),
    "dlq": ("review rejected pings: stats, ls, show, replay, discard", _dlq_args, run_dlq),
    "orders": ("orders and their customers' tracking links: create, ls, revoke, deliver", _orders_args, run_orders),
    "topics": ("create or describe the topics (idempotent)", _topics_args, run_topics),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tracker", description="Real-time courier location tracker on Kafka.")
    parser.add_argument("--version", action="version", version=f"tracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. 2 is only for bad flags and settings: a :class:`UsageError`, a
    :class:`SettingsError`, or a ValueError raised while the command checks its flags, before it starts to run
    (installs its stop handlers, :func:`tracker.signals.installed`). Once running, a ValueError (a
    ``msgspec.DecodeError`` of a record, say) is a crash like any other error: exit code 1, which ``tracker up``
    and ``--workers`` restart as they restart any exit."""
    from tracker import signals

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    installs = signals.installed()
    try:
        return COMMANDS[args.command][2](args) or 0
    except (UsageError, SettingsError) as exc:
        print(f"tracker {args.command}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # A UnicodeError is a ValueError too, but never a bad flag; and nothing is one once the command runs.
        if isinstance(exc, UnicodeError) or signals.installed() != installs:
            return _crashed(args.command, exc)
        print(f"tracker {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else gets one line too; _crashed logs the traceback
        return _crashed(args.command, exc)


def _crashed(command: str, exc: Exception) -> int:
    """One line for an error that is not the user's to fix, exit code 1; the traceback goes to the debug log."""
    log.debug("unhandled error", exc_info=exc)
    print(f"tracker {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
