"""`make bench`: runs the benchmarks on a fresh embedded stack and rewrites their BENCHMARKS.md sections."""

from __future__ import annotations

import argparse
import shutil
import tempfile

from bench import (
    chart,
    cost,
    endurance,
    events,
    fanout,
    footprint,
    history,
    ingest,
    latency,
    page,
    scaling,
    soak,
    throughput,
    tracking,
)
from bench.common import REPORT, progress, write_section
from tracker.local.embedded import EmbeddedStack
from tracker.settings import Settings

SECTIONS = (
    "throughput",
    "latency",
    "page",
    "soak",
    "footprint",
    "endurance",
    "ingest",
    "events",
    "history",
    "fanout",
    "fanout-doubling",
    "scaling",
    "cost",
    "tracking",
)


def describe(stack: EmbeddedStack) -> tuple[str, str, int | None]:
    """(broker name for the report, section suffix, broker pid when it runs on this machine)."""
    if stack.kafka is not None:
        return "embedded Apache Kafka", "", stack.kafka.pid(0)
    tansu = [process.pid for name, process in stack.processes if name == "tansu"]
    if tansu:
        return "embedded Tansu", "-tansu", tansu[0]
    return f"Kafka at {stack.settings.kafka_bootstrap_servers}", "-external", None


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--pings", type=int, default=200_000, help="pre-filled pings per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="5000,20000", help="latency: pings/s, comma-separated")
    parser.add_argument("--ticks", default="25,200", help="latency: gateway ticks in ms, comma-separated")
    parser.add_argument("--duration", type=float, default=15.0, help="latency: seconds per round")
    parser.add_argument("--latency-rounds", type=int, default=3, help="latency: rounds per row")
    parser.add_argument("--frames", type=int, default=40, help="page: frames of each kind")
    parser.add_argument("--soak-rate", type=int, default=5000, help="soak: pings/s")
    parser.add_argument("--soak-duration", type=float, default=120.0, help="soak: seconds")
    parser.add_argument("--footprint-window", type=float, default=20.0, help="footprint: seconds measured per row")
    parser.add_argument("--endurance-rate", type=int, default=5000, help="endurance: pings/s")
    parser.add_argument("--endurance-duration", type=float, default=300.0, help="endurance: seconds")
    parser.add_argument("--ingest-window", type=float, default=8.0, help="ingest: seconds measured per row")
    parser.add_argument("--fanout-clients", type=int, default=1000, help="fanout: WebSocket clients")
    parser.add_argument("--fanout-couriers", type=int, default=20_000, help="fanout: couriers, a ping a second each")
    parser.add_argument("--fanout-window", type=float, default=20.0, help="fanout: seconds measured per row")
    parser.add_argument("--fanout-workers", default="1,2", help="fanout: gateway processes per row, comma-separated")
    parser.add_argument(
        "--fanout-sweep", default="10,250,500", help="fanout: client counts one gateway process is also measured with"
    )
    parser.add_argument(
        "--fanout-quick",
        action="store_true",
        help="fanout: a smoke check (100 clients, 2,000 couriers, 10 s, one process), printed, not written",
    )
    parser.add_argument(
        "--fanout-doubling-clients", type=int, default=500, help="fanout-doubling: clients of the one process"
    )
    parser.add_argument(
        "--fanout-doubling-couriers", type=int, default=5000, help="fanout-doubling: couriers, a ping a second"
    )
    parser.add_argument("--scaling-pings", type=int, default=200_000, help="scaling: pre-filled pings per contender")
    parser.add_argument("--scaling-rounds", type=int, default=2, help="scaling: rounds of 1 vs 2 validators")
    parser.add_argument(
        "--scaling-rates",
        default="1000,2000,4000,6000,8000,10000,12000,14000",
        help="scaling: the step load's pings/s, comma-separated, increasing",
    )
    parser.add_argument(
        "--scaling-validators", default="1,2", help="scaling: validators per step load, comma-separated"
    )
    parser.add_argument("--scaling-duration", type=float, default=15.0, help="scaling: seconds per step")
    parser.add_argument(
        "--scaling-quick",
        action="store_true",
        help="scaling: a smoke check (40,000 pings, 1 round, steps of 2,000 and 5,000 pings/s, 6 s), printed only",
    )
    parser.add_argument("--cost-loads", default="2000,10000", help="cost: pings/s straight to Kafka, comma-separated")
    parser.add_argument(
        "--cost-ingest-loads", default="300,600", help="cost: pings/s through the ingest, comma-separated"
    )
    parser.add_argument("--cost-window", type=float, default=15.0, help="cost: seconds measured per row")
    parser.add_argument(
        "--cost-quick",
        action="store_true",
        help="cost: a smoke check (1,000 pings/s each way, 5 s), printed, not written (docs/sizing.md untouched)",
    )
    parser.add_argument("--tracking-sockets", type=int, default=10_000, help="tracking: customers' sockets")
    parser.add_argument("--tracking-couriers", type=int, default=2_000, help="tracking: couriers, a ping a second")
    parser.add_argument("--tracking-window", type=float, default=20.0, help="tracking: seconds measured per row")
    parser.add_argument(
        "--tracking-quick",
        action="store_true",
        help="tracking: a smoke check (1,000 sockets, 200 couriers, 20 dispatchers, 8 s), printed, not written",
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    workdir = tempfile.mkdtemp(prefix="tracker-bench-")
    try:
        stack = EmbeddedStack(Settings.from_env().replace(data_dir=workdir))
        with stack as settings:
            broker, suffix, broker_pid = describe(stack)
            progress(f"{broker} at {settings.kafka_bootstrap_servers}, Redis {settings.redis_url}")
            redis_pid = next((process.pid for name, process in stack.processes if name == "redis"), None)
            for name in {"soak", "footprint", "endurance", "scaling", "cost"} & set(wanted):
                if broker_pid is None or (redis_pid is None and name != "soak"):
                    parser.error(
                        f"{name} measures the processes on this machine, so it needs the embedded broker"
                        f"{'' if name == 'soak' else ' and Redis'}"
                    )
            # Processes measured by footprint and endurance (which, like soak, run only when they are there).
            fixed_pids = {name: pid for name, pid in (("broker", broker_pid), ("redis", redis_pid)) if pid is not None}
            sections = []
            if "throughput" in wanted:
                sections.append(("throughput", throughput.run(settings, args.pings, args.rounds, broker)))
            if "latency" in wanted:
                sections.append(
                    (
                        "latency",
                        latency.run(
                            settings,
                            [int(r) for r in args.rates.split(",")],
                            [int(t) for t in args.ticks.split(",")],
                            args.duration,
                            broker,
                            args.latency_rounds,
                        ),
                    )
                )
            if "page" in wanted:
                sections.append(("page", page.run(settings, 10_000, args.frames)))
            if "soak" in wanted:
                assert broker_pid is not None  # checked above
                sections.append(
                    ("soak", soak.run(settings, broker, broker_pid, args.soak_rate, args.soak_duration, window_s=10.0))
                )
            if "footprint" in wanted:
                sections.append(("footprint", footprint.run(settings, broker, fixed_pids, args.footprint_window)))
            if "endurance" in wanted:
                sections.append(
                    (
                        "endurance",
                        endurance.run(
                            settings, broker, fixed_pids, args.endurance_rate, args.endurance_duration, window_s=30.0
                        ),
                    )
                )
            if "ingest" in wanted:
                sections.append(("ingest", ingest.run(settings, broker, fixed_pids, args.ingest_window)))
            if "events" in wanted:
                sections.append(("events", events.run(settings, broker=broker)))
            if "history" in wanted:
                sections.append(("history", history.run(settings, broker)))
            if "fanout" in wanted:
                quick = args.fanout_quick
                report = fanout.run(
                    settings,
                    broker,
                    fixed_pids,
                    clients=100 if quick else args.fanout_clients,
                    couriers=2000 if quick else args.fanout_couriers,
                    window_s=10.0 if quick else args.fanout_window,
                    workers=(1,) if quick else tuple(int(n) for n in args.fanout_workers.split(",")),
                    sweep=() if quick else tuple(int(n) for n in args.fanout_sweep.split(",") if n.strip()),
                    quick=quick,
                )
                if quick:
                    print(report)  # a smoke check: not written to BENCHMARKS.md
                else:
                    sections.append(("fanout", report))
            if "fanout-doubling" in wanted:
                report = fanout.run_doubling(
                    settings,
                    broker,
                    fixed_pids,
                    clients=args.fanout_doubling_clients,
                    couriers=args.fanout_doubling_couriers,
                    window_s=args.fanout_window,
                )
                sections.append(("fanout-doubling", report))
            if "scaling" in wanted:
                assert broker_pid is not None and redis_pid is not None  # checked above
                quick = args.scaling_quick
                report = scaling.run(
                    settings,
                    broker,
                    fixed_pids,
                    pings=40_000 if quick else args.scaling_pings,
                    rounds=1 if quick else args.scaling_rounds,
                    rates=[2000, 5000] if quick else [int(r) for r in args.scaling_rates.split(",")],
                    step_validators=[1] if quick else [int(n) for n in args.scaling_validators.split(",")],
                    duration_s=6.0 if quick else args.scaling_duration,
                    bench_args="--only scaling",
                )
                if quick:
                    print(report)  # a smoke check: not written to BENCHMARKS.md
                else:
                    sections.append(("scaling", report))
            if "cost" in wanted:
                assert broker_pid is not None and redis_pid is not None  # checked above
                quick = args.cost_quick
                report = cost.run(
                    settings,
                    broker,
                    fixed_pids,
                    loads=[1000] if quick else [int(r) for r in args.cost_loads.split(",")],
                    ingest_loads=[1000] if quick else [int(r) for r in args.cost_ingest_loads.split(",")],
                    window_s=5.0 if quick else args.cost_window,
                    write_guide=not quick,
                )
                if quick:
                    print(report)  # a smoke check: not written to BENCHMARKS.md
                else:
                    sections.append(("cost", report))
            if "tracking" in wanted:
                quick = args.tracking_quick
                report = tracking.run(
                    settings,
                    broker,
                    sockets=1000 if quick else args.tracking_sockets,
                    couriers=200 if quick else args.tracking_couriers,
                    dispatchers=20 if quick else 100,
                    window_s=8.0 if quick else args.tracking_window,
                    quick=quick,
                )
                if quick:
                    print(report)  # a smoke check: not written to BENCHMARKS.md
                else:
                    sections.append(("tracking", report))
            for name, section in sections:
                write_section(name + ("" if name == "page" else suffix), section)
                print(section)
            if {"soak", "latency"} & set(wanted):
                progress("drew " + ", ".join(str(path) for path in chart.redraw()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    progress(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
