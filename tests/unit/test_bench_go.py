"""The benchmarks' Go programs (the fan-out bench's load client and feeder, bench/fanout.py builds them on first
use) keep their contracts: their own ``go test`` suites, which hold them to the Python stand-ins byte for byte
(the feeder's positions, the load client's counts and frame-head parsing), pass with nothing skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("program", ["loadclient", "feeder"])
def test_the_go_harness_passes_its_own_tests(program):
    go = shutil.which("go")
    if go is None:
        pytest.skip("no go on PATH: the benchmarks fall back to their Python stand-ins")
    ran = subprocess.run(
        [go, "test", "-count=1", "-v", "./..."],
        cwd=BENCH / program,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, output[-3000:]
    assert "--- PASS" in output and "--- SKIP" not in output, output[-3000:]
