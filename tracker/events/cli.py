"""``tracker events``: the events worker and the event indexer, in one process.

Prints its totals as one JSON line when it stops (SIGTERM or Ctrl-C; ``--until-idle`` for a burst).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import msgspec

from tracker.settings import Settings
from tracker.signals import install_stop_handlers

log = logging.getLogger("tracker")
HELP = "zone and status events: courier-positions -> courier-events, and the index behind /api/events"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    parser.add_argument(
        "--until-idle", type=_seconds, metavar="SECONDS", help="exit once both topics have been quiet this long"
    )
    parser.add_argument(
        "--zone-dwell",
        type=_seconds,
        dest="zone_dwell_s",
        metavar="SECONDS",
        help="time a courier must stay across a zone boundary before it counts (default 30; 0: at once)",
    )
    parser.add_argument("--service-area", dest="service_area_file", metavar="GEOJSON")
    connection_args(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run with ``settings`` (connections, logging and required services already settled by the caller)."""
    from tracker.events.indexer import run_event_indexer
    from tracker.events.worker import run_events
    from tracker.events.zones import Zones
    from tracker.geo import load_service_area
    from tracker.store import Store

    settings = settings.replace(zone_dwell_s=args.zone_dwell_s, service_area_file=args.service_area_file)
    zones = Zones.of_area(load_service_area(settings.service_area_file))
    log.info("%d zones; dwell %g s", len(zones), settings.zone_dwell_s)

    async def main() -> int:
        stop = asyncio.Event()
        install_stop_handlers(asyncio.get_running_loop(), stop)
        decided_all = asyncio.Event()  # with --until-idle, the indexer drains what the worker made last

        async def decide() -> Counter[str]:
            try:
                return await run_events(settings, zones, stop, idle_exit_s=args.until_idle)
            finally:
                decided_all.set()

        async with Store(settings) as store:
            tasks = [
                asyncio.create_task(decide(), name="events"),
                asyncio.create_task(
                    run_event_indexer(settings, store, stop, idle_exit_s=args.until_idle, idle_after=decided_all),
                    name="event-indexer",
                ),
            ]
            try:
                decided, indexed = await asyncio.gather(*tasks)
            except Exception:
                # A crash: its log gets the traceback; nothing unacknowledged was applied or committed, so
                # whoever runs next carries on.
                log.exception("tracker events stopped")
                stop.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        totals = dict(decided) | {f"index:{name}": count for name, count in indexed.items()}
        print(msgspec.json.encode(dict(sorted(totals.items()))).decode(), flush=True)
        return 0

    return asyncio.run(main())
