"""`make fuzz`: the corpus through the live system on the embedded stack; exit code 0 when every payload is
accounted for and nothing stopped, 1 otherwise (the summary says what was missing)."""

from __future__ import annotations

import argparse
import logging
import sys

from fuzz.live import parse_kinds, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--payloads", type=int, default=100_000, help="how many payloads to produce")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (same seed, same payloads)")
    parser.add_argument("--validators", type=int, default=2, help="validator processes")
    parser.add_argument("--kinds", help="comma-separated payload kinds to send (default: every kind, mixed)")
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up when no verdict arrives for this many seconds"
    )
    args = parser.parse_args(argv)
    try:
        kinds = parse_kinds(args.kinds)
    except ValueError as exc:
        parser.error(str(exc))
    if args.payloads < 1 or args.validators < 1:
        parser.error("--payloads and --validators must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = run(args.payloads, args.seed, validators=args.validators, kinds=kinds, stall_s=args.stall)
    print(report.summary(), flush=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
