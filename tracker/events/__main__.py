"""``python -m tracker.events``: the same as ``tracker events`` (tracker/events/cli.py), runnable on its own."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tracker import cli
from tracker.events import cli as events_cli
from tracker.settings import SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli._Parser(prog="tracker events", description=events_cli.HELP)
    events_cli.add_arguments(parser, cli._connection_args)
    args = parser.parse_args(argv)
    try:
        settings = cli._settings(args)
        cli._require(settings)
        cli._setup_logging(settings)
        return events_cli.run(args, settings)
    except (cli.UsageError, SettingsError, ValueError) as exc:
        print(f"tracker events: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
