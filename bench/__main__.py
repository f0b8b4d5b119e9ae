"""`make bench`: runs the benchmarks on a fresh embedded stack and rewrites their BENCHMARKS.md sections."""

from __future__ import annotations

import argparse
import shutil
import tempfile

from bench import latency, page, throughput
from bench.common import REPORT, progress, write_section
from tracker.embedded import EmbeddedStack
from tracker.settings import Settings

SECTIONS = ("throughput", "latency", "page")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--pings", type=int, default=200_000, help="pre-filled pings per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="5000,20000", help="latency: pings/s, comma-separated")
    parser.add_argument("--ticks", default="25,200", help="latency: gateway ticks in ms, comma-separated")
    parser.add_argument("--duration", type=float, default=12.0, help="latency: seconds per row")
    parser.add_argument("--frames", type=int, default=40, help="page: frames of each kind")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    workdir = tempfile.mkdtemp(prefix="tracker-bench-")
    try:
        with EmbeddedStack(Settings.from_env().replace(data_dir=workdir)) as settings:
            progress(f"embedded broker {settings.kafka_bootstrap_servers}, Redis {settings.redis_url}")
            if "throughput" in wanted:
                section = throughput.run(settings, args.pings, args.rounds)
                write_section("throughput", section)
                print(section)
            if "latency" in wanted:
                broker = "external" if Settings.from_env().kafka_bootstrap_servers else "embedded"
                section = latency.run(settings, [int(r) for r in args.rates.split(",")],
                                      [int(t) for t in args.ticks.split(",")], args.duration, broker)
                write_section("latency" if broker == "embedded" else "latency-apache", section)
                print(section)
            if "page" in wanted:
                section = page.run(settings, 10_000, args.frames)
                write_section("page", section)
                print(section)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    progress(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
