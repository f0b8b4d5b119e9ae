"""``tracker dlq``: review rejected pings from a terminal. Same index and operations as the page.

Everything printed that a dead letter could have chosen (ids, reasons, details, keys, headers, payloads) goes
through tracker/dlq/terminal.py first, so no escape sequence in it reaches the operator's terminal; ``--json``
output is exact JSON with those characters written as JSON escapes.

A replay or discard from here is recorded in the entry's ``status_by`` as ``cli@<login name>`` (the login
name as the process reports it): whoever runs the CLI reaches Redis directly, so this names the account, it
does not prove it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from tracker.dlq import actions
from tracker.dlq.entry import ReplayRefused, payload_of, row_json
from tracker.dlq.index import DlqIndex, Filters, StatusConflict, UnknownEntry
from tracker.dlq.terminal import printable, printable_json
from tracker.kafka import Producer
from tracker.rules import parse_timestamp
from tracker.settings import Settings
from tracker.store import Store


def _time(text: str) -> int:
    value = parse_timestamp(int(text) if text.lstrip("-").isdigit() else text)
    if isinstance(value, str):
        raise argparse.ArgumentTypeError("expected epoch milliseconds or ISO-8601 with an offset")
    return value


def add_arguments(parser: argparse.ArgumentParser, connection_args: Callable[[argparse.ArgumentParser], None]) -> None:
    sub = parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True, parser_class=type(parser))
    stats = sub.add_parser("stats", help="counts by reason, status and courier")
    stats.add_argument("--json", action="store_true")
    listing = sub.add_parser("ls", help="rejected pings, newest first")
    listing.add_argument("--reason")
    listing.add_argument("--partner")
    listing.add_argument("--status", choices=("new", "replayed", "discarded"))
    listing.add_argument("--since", type=_time, metavar="TIME", help="epoch ms or ISO-8601")
    listing.add_argument("--until", type=_time, metavar="TIME", help="epoch ms or ISO-8601")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one rejected ping with its headers and payload")
    show.add_argument("entry_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    replay = sub.add_parser("replay", help="send rejected pings back to location-updates")
    replay.add_argument("entry_ids", metavar="ID", nargs="+")
    replay.add_argument("--edit", metavar="FILE", help="corrected JSON payload (one ID only; '-' for stdin)")
    discard = sub.add_parser("discard", help="mark rejected pings as reviewed, not to be replayed")
    discard.add_argument("entry_ids", metavar="ID", nargs="+")
    for action in (stats, listing, show, replay, discard):
        connection_args(action)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    async with Store(settings) as store:
        index = DlqIndex(store)
        command = args.dlq_command
        if command == "stats":
            return _print_stats(await index.stats(), args.json)
        if command == "ls":
            return await _list(index, args)
        if command == "show":
            return await _show(index, args.entry_id, args.json)
        if command == "discard":
            return await _each(
                args.entry_ids, lambda entry_id: actions.discard(index, entry_id, actor=_actor()), "discarded"
            )
        try:
            actions.check_replays_enabled(settings)
        except actions.ReplaysDisabled as exc:
            print(printable(str(exc)), file=sys.stderr)
            return 1
        edited = _read_edit(args)
        async with Producer(settings) as producer:
            return await _each(
                args.entry_ids,
                lambda entry_id: actions.replay(settings, index, producer, entry_id, actor=_actor(), edited=edited),
                "replayed",
            )


ACTOR_NAME_MAX = 64


def _actor() -> str:
    """``cli@<login name>``: what ``status_by`` records for a replay or discard from here."""
    try:
        user = getpass.getuser()  # LOGNAME, USER, ... or the password database
    except (KeyError, OSError):
        return "cli"
    return f"cli@{printable(user[:ACTOR_NAME_MAX])}" if user.strip() else "cli"


def _read_edit(args: argparse.Namespace) -> bytes | None:
    if args.edit is None:
        return None
    if len(args.entry_ids) != 1:
        raise ValueError("--edit takes exactly one ID")
    if args.edit == "-":
        return sys.stdin.buffer.read()
    try:
        with open(args.edit, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ValueError(f"--edit {args.edit}: {exc.strerror}") from None


async def _each(entry_ids: list[str], action, verb: str) -> int:
    failures = 0
    for entry_id in entry_ids:
        try:
            await action(entry_id)
        except UnknownEntry:
            print(f"{printable(entry_id)}: no such rejected ping", file=sys.stderr)
        except (StatusConflict, ReplayRefused) as exc:
            print(printable(f"{entry_id}: {exc}"), file=sys.stderr)
        else:
            print(f"{printable(entry_id)}: {verb}")
            continue
        failures += 1
    return 1 if failures else 0


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_stats(stats: dict, as_json: bool) -> int:
    if as_json:
        print(printable_json(msgspec.json.encode(stats)))
        return 0
    print(f"rejected pings: {stats['total']} (newest {stats['indexed']} kept for review)")
    print("\nby reason")
    for reason, count in sorted(stats["by_reason"].items(), key=lambda item: -item[1]):
        print(f"  {printable(reason):<22} {count:>8}")
    print("\nby status (in the index)")
    for status, count in stats["by_status"].items():
        print(f"  {status:<22} {count:>8}")
    if stats["by_partner"]:
        print("\ncouriers with most rejects")
        for partner, count in stats["by_partner"][:10]:
            print(f"  {printable(partner):<22} {count:>8}")
    return 0


async def _list(index: DlqIndex, args: argparse.Namespace) -> int:
    page = await index.list(
        Filters(args.reason, args.partner, args.status, args.since, args.until),
        limit=max(1, min(args.limit, 1000)),
        cursor=args.cursor,
    )
    if args.json:
        print(
            printable_json(
                msgspec.json.encode(
                    {"items": [row_json(r) for r in page.rows], "total": page.total, "next_cursor": page.next_cursor}
                )
            )
        )
        return 0
    print(f"{'ID':<14} {'REJECTED (UTC)':<20} {'REASON':<22} {'PARTNER':<16} {'STATUS':<10} DETAIL")
    for row in page.rows:
        entry = row.entry
        print(
            f"{printable(entry.id):<14} {_when(entry.rejected_at):<20} {printable(entry.reason):<22} "
            f"{printable((entry.partner_id or '-')[:16]):<16} {printable(row.status):<10} "
            f"{printable(entry.detail[:60])}"
        )
    more = f"; next page: --cursor {printable(page.next_cursor)}" if page.next_cursor else ""
    print(f"\n{len(page.rows)} of {page.total} shown{more}")
    return 0


async def _show(index: DlqIndex, entry_id: str, as_json: bool) -> int:
    try:
        row = await index.get(entry_id)
    except UnknownEntry:
        print(f"{printable(entry_id)}: no such rejected ping", file=sys.stderr)
        return 1
    entry = row.entry
    payload = payload_of(entry).decode("utf-8", "replace")
    if as_json:
        print(
            printable_json(
                msgspec.json.encode(
                    row_json(row)
                    | {
                        "key": entry.key,
                        "headers": entry.headers,
                        "payload_text": payload,
                        "payload_size": entry.payload_size,
                        "payload_sha256": entry.payload_sha256,
                    }
                )
            )
        )
        return 0
    by = f" by {row.status_by}" if row.status_by else ""
    key = "-" if entry.key is None else repr(entry.key)
    lines = [
        f"{entry.id}  {entry.reason}  ({row.status}{by})",
        f"detail:   {entry.detail}",
        f"partner:  {entry.partner_id or '-'}   key: {key}",
        f"rejected: {_when(entry.rejected_at)} UTC by {entry.validator or '-'}",
        f"original: {entry.original.topic}[{entry.original.partition}]@{entry.original.offset}",
        "headers:",
        *(f"  {name} = {value}" for name, value in entry.headers),
    ]
    if entry.payload_truncated:
        lines.append(
            f"payload (the first {len(payload_of(entry))} of {entry.payload_size} bytes, sha256 "
            f"{entry.payload_sha256 or 'unknown'}; too large to replay as is):"
        )
    else:
        lines.append("payload:")
    lines.append(f"  {payload}")
    for line in lines:  # each line escaped whole: a newline in any field is shown, not printed
        print(printable(line))
    return 0
