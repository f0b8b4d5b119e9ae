"""``tracker orders create|ls|revoke|deliver``: orders and their tracking links, from a shell.

Talks to Redis through the store and signs links locally (so it needs the gateways' TRACKER_TRACKING_SECRET);
``deliver`` also produces ``order_delivered`` to ``courier-events`` (so it needs the broker), as the API does.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tracker.kafka import Producer
from tracker.orders import service
from tracker.orders.link import is_id
from tracker.settings import Settings
from tracker.store import OrderStore, Store


def _point(text: str) -> tuple[float, float]:
    """``LAT,LON`` in degrees."""
    lat_text, sep, lon_text = text.partition(",")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON in degrees, got {text!r}") from None
    if not sep or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"expected LAT,LON within ±90,±180, got {text!r}")
    return lat, lon


def _id(text: str) -> str:
    if not is_id(text):
        raise argparse.ArgumentTypeError("ids are 1-64 printable characters, not blank")
    return text


def _ttl(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if value < 60:
        raise argparse.ArgumentTypeError(f"must be at least 60 seconds, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    sub = parser.add_subparsers(dest="orders_command", metavar="ACTION", required=True, parser_class=type(parser))
    create = sub.add_parser("create", help="create an order and print its tracking link")
    create.add_argument("order_id", metavar="ORDER_ID", type=_id)
    create.add_argument("--courier", dest="partner_id", metavar="PARTNER_ID", type=_id, required=True)
    create.add_argument("--dropoff", metavar="LAT,LON", type=_point, required=True)
    create.add_argument("--pickup", metavar="LAT,LON", type=_point, help="none: the order starts picked_up")
    create.add_argument("--ttl", metavar="SECONDS", type=_ttl, help="the link's lifetime (TRACKER_TRACKING_TTL_S)")
    create.add_argument("--base-url", metavar="URL", help="the gateway's URL the link starts with")
    ls = sub.add_parser("ls", help="list orders, latest expiry first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="one JSON object per order")
    revoke = sub.add_parser("revoke", help="refuse the order's links from now on (open pages close within ~1 s)")
    revoke.add_argument("order_id", metavar="ORDER_ID", type=_id)
    deliver = sub.add_parser("deliver", help="mark the order delivered (produces order_delivered once)")
    deliver.add_argument("order_id", metavar="ORDER_ID", type=_id)
    for each in (create, ls, revoke, deliver):
        connection_args(each)


class OrdersError(ValueError):
    """A problem the user can fix (the CLI prints it as one line)."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with Store(settings) as store:
        orders = OrderStore(store)
        if args.orders_command == "create":
            return await _create(args, settings, orders)
        if args.orders_command == "revoke":
            if not await orders.revoke(args.order_id):
                raise OrdersError(f"no order {args.order_id!r}")
            print(f"Order {args.order_id} revoked: its links are refused, open pages close within ~1 s.")
            return 0
        if args.orders_command == "deliver":
            async with Producer(settings) as producer:
                produce = service.producing(producer, settings.events_topic)
                try:
                    was, event = await service.deliver(orders, produce, args.order_id)
                except service.NoOrder:
                    raise OrdersError(f"no order {args.order_id!r}") from None
            print(f"Order {args.order_id} delivered (was {was.value})" + ("" if event else "; it already was"))
            return 0
        _list(await orders.listed(args.limit), as_json=args.json)
        return 0


async def _create(args: argparse.Namespace, settings: Settings, orders: OrderStore) -> int:
    if not settings.tracking_secret:
        raise OrdersError("TRACKER_TRACKING_SECRET is not set: links are signed with the gateways' secret")
    ttl_s = args.ttl or settings.tracking_ttl_s
    if ttl_s > settings.tracking_ttl_max_s:
        raise OrdersError(f"--ttl must be at most {settings.tracking_ttl_max_s} (TRACKER_TRACKING_TTL_MAX_S)")
    pickup = None if args.pickup is None else service.LatLon(*args.pickup)
    body = service.CreateBody(args.order_id, args.partner_id, service.LatLon(*args.dropoff), pickup, ttl_s)
    try:
        created = await service.create(orders, settings.tracking_secret, body, ttl_s)
    except service.OrderExists:
        raise OrdersError(f"order {args.order_id!r} exists") from None
    base = (args.base_url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    expires = datetime.fromtimestamp(created.expires_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"Order {created.order_id} of courier {created.partner_id}, link valid until {expires}:")
    print(f"  {base}{created.url}")
    return 0


def _list(rows: list[tuple[str, bytes, bytes | None, bool]], *, as_json: bool) -> None:
    shown: list[dict] = []
    for order_id, raw, held, revoked in rows:
        record = service.read_record(raw)
        stored = service.read_state(held)
        if record is None:
            continue
        shown.append(
            {
                "order_id": order_id,
                "partner_id": record.partner_id,
                "state": stored[0].value if stored else None,
                "revoked": revoked,
                "expires_ms": record.expires_ms,
            }
        )
    if as_json:
        for row in shown:
            print(msgspec.json.encode(row).decode())
        return
    if not shown:
        print("No orders: `tracker orders create ORDER_ID --courier ID --dropoff LAT,LON` makes one.")
        return
    width = max(len("ORDER"), *(len(row["order_id"]) for row in shown))
    print(f"{'ORDER':<{width}}  {'COURIER':<16}  {'STATE':<10}  EXPIRES (UTC)")
    for row in shown:
        expires = datetime.fromtimestamp(row["expires_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        state = "revoked" if row["revoked"] else (row["state"] or "?")
        print(f"{row['order_id']:<{width}}  {row['partner_id']:<16}  {state:<10}  {expires}")
