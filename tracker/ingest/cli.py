"""``tracker devices add|ls|revoke``: who may post to the ingest (the rules are in tracker/ingest/devices.py)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tracker.ingest import devices
from tracker.settings import Settings
from tracker.store import DeviceRecord, Store


def add_arguments(parser: argparse.ArgumentParser, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    sub = parser.add_subparsers(dest="devices_command", metavar="ACTION", required=True, parser_class=type(parser))
    add = sub.add_parser("add", help="register a device (a courier id) and print its new token, once")
    add.add_argument("device_id", metavar="ID", help="the courier id its pings will carry")
    ls = sub.add_parser("ls", help="list the registered devices")
    ls.add_argument("--json", action="store_true", help="one JSON object per device")
    revoke = sub.add_parser("revoke", help="revoke a device's token (refused within TRACKER_INGEST_AUTH_CACHE_S)")
    revoke.add_argument("device_id", metavar="ID")
    for each in (add, ls, revoke):
        connection_args(each)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with Store(settings) as store:
        if args.devices_command == "add":
            token = await devices.add(store, args.device_id)
            print(f"Device {args.device_id} added. Its token is shown this once (only a hash of it is kept):")
            print(f"  token: {token}")
        elif args.devices_command == "revoke":
            await devices.revoke(store, args.device_id)
            print(
                f"Device {args.device_id} revoked: its token is refused by every ingest within "
                f"{settings.ingest_auth_cache_s:g} s."
            )
        else:
            _list(await devices.listing(store), as_json=args.json)
    return 0


def _list(rows: list[tuple[str, DeviceRecord]], *, as_json: bool) -> None:
    if as_json:
        for device_id, device in rows:
            print(msgspec.json.encode({"id": device_id, "created_ms": device.created_ms}).decode())
        return
    if not rows:
        print("No devices: `tracker devices add ID` registers one.")
        return
    width = max(len("ID"), *(len(device_id) for device_id, _ in rows))
    print(f"{'ID':<{width}}  ADDED (UTC)")
    for device_id, device in rows:
        added = datetime.fromtimestamp(device.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{device_id:<{width}}  {added}")
