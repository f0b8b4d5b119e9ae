"""The soak picture is drawn from BENCHMARKS.md's tables, so it shows exactly what they say."""

from __future__ import annotations

from bench.chart import draw, windows

REPORT = """
<!-- bench:soak -->
| t (s) | hop p50 (ms) | hop p99 (ms) | p50 vs first window | broker CPU | arrived |
|---|---|---|---|---|---|
| 10 | 4 | 22 | 1.0× | 34 % | 100% |
| 20 | 3 | 11 | 0.8× | 27 % | 100% |
<!-- /bench:soak -->
<!-- bench:soak-tansu -->
| t (s) | hop p50 (ms) | hop p99 (ms) | p50 vs first window | broker CPU | arrived |
|---|---|---|---|---|---|
| 10 | 9 | 29 | 1.0× | 58 % | 100% |
| 20 | 6,752 | 14,910 | 750.2× | 103 % | 57% |
| 30 | — | — | — | 105 % | 0% |
<!-- /bench:soak-tansu -->
"""


def test_rows_are_read_from_each_section():
    assert windows(REPORT, "soak") == [(10.0, 4.0, 1.0), (20.0, 3.0, 1.0)]
    assert windows(REPORT, "soak-tansu") == [(10.0, 9.0, 1.0), (20.0, 6752.0, 0.57), (30.0, None, 0.0)]


def test_each_broker_is_a_line_and_lost_windows_are_marked():
    svg = draw(REPORT)
    assert svg.count("<polyline") == 2
    assert "embedded Apache Kafka" in svg and "embedded Tansu" in svg
    assert svg.count('fill="white" stroke=') == 1  # the window of which only 57 % arrived
    assert svg.count(">✕</text>") == 1  # the window of which nothing arrived


def test_no_tables_no_picture():
    assert draw("# Benchmarks\n") is None
