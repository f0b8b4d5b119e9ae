"""Shared pieces: machine facts, timed child processes, the BENCHMARKS.md writer."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        memory = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        memory = "unknown memory"
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def running(value: str | None, name: str) -> str:
    """A setting the running stack fills in (the broker's bootstrap servers, Redis's URL)."""
    if not value:
        raise RuntimeError(f"{name} is not set: the benchmarks measure a running broker and Redis")
    return value


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic GC in the measuring process while it measures.

    Its bookkeeping (hundreds of thousands of send and receive times) makes full collections take tens of
    milliseconds; a pause in the measuring client would be reported as pipeline latency.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu_s(client) -> float:
    """CPU time a Redis server has used so far (user + system), from INFO cpu; ``client`` is a redis-py client."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def reproduce(broker: str, bench_args: str) -> str:
    """The command that reproduces a section measured on ``broker`` (a name from ``bench.__main__.describe``)."""
    if broker == "embedded Tansu":
        return f'`TRACKER_EMBEDDED_BROKER=tansu make bench BENCH_ARGS="{bench_args}"`'
    if broker == "embedded Apache Kafka":
        return f'`make bench BENCH_ARGS="{bench_args}"`'
    return f'`KAFKA_BOOTSTRAP_SERVERS=<the cluster> make bench BENCH_ARGS="{bench_args}"`'


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_measured(argv: list[str], env: dict[str, str] | None = None, timeout_s: float = 600) -> tuple[dict, int]:
    """Run a child that prints a JSON line last; returns (that JSON, peak RSS in KiB)."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"{argv[:4]} took over {timeout_s} s")
        time.sleep(0.05)
    assert process.stdout is not None and process.stderr is not None  # both PIPE
    stdout = process.stdout.read().decode()
    stderr = process.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:5])} exited {code}: {stderr[-1500:]}")
    return json.loads(stdout.strip().splitlines()[-1]), usage.ru_maxrss


def write_section(name: str, body: str, report: Path = REPORT) -> None:
    """Replace (or append) the ``<!-- bench:name -->`` section of BENCHMARKS.md (or of ``report``: a generated
    block in another document, such as docs/sizing.md's table)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = (
        report.read_text()
        if report.exists()
        else (
            "# Benchmarks\n\nWritten by `make bench`; every figure comes with the baseline measured in the same run.\n"
        )
    )
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    report.write_text(text)


def load_average() -> float:
    """The 1-minute load average: how much other work shared these cores while a row ran."""
    return os.getloadavg()[0]


def waited_seconds(pids: list[int]) -> float:
    """Seconds ``pids`` have spent runnable but waiting for a core (/proc/PID/schedstat, second field): how much
    other work on the machine held them back. A process that is gone counts 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/schedstat") as stat:
            total += int(stat.read().split()[1]) / 1e9
    return total


def wait_for_quiet(below: float | None = None, max_wait_s: float = 30.0) -> float:
    """Wait (up to ``max_wait_s``) until the 1-minute load average is under ``below`` (default: the core count
    plus one) before a row that other work on a shared machine would spoil; returns the load average then. A
    benchmark still runs after the wait, and says what the load was."""
    limit = below if below is not None else (os.cpu_count() or 1) + 1.0
    deadline = time.monotonic() + max_wait_s
    while load_average() >= limit and time.monotonic() < deadline:
        time.sleep(5.0)
    return load_average()
