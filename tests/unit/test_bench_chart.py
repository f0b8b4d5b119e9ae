"""The soak picture is drawn from BENCHMARKS.md's tables, so it shows exactly what they say."""

from __future__ import annotations

from bench.chart import draw, draw_latency, latency_rows, windows

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
    assert svg is not None
    assert svg.count("<polyline") == 2
    assert "embedded Apache Kafka" in svg and "embedded Tansu" in svg
    assert svg.count('fill="white" stroke=') == 1  # the window of which only 57 % arrived
    assert svg.count(">✕</text>") == 1  # the window of which nothing arrived


def test_no_tables_no_picture():
    assert draw("# Benchmarks\n") is None


LATENCY = """
<!-- bench:latency -->
| pings/s | tick (ms) | p50 (ms) | p99 (ms) | each round p50 / p99 | missing | \
bare hop p50 / p99 (ms) | p50 vs bare hop | target met |
|---|---|---|---|---|---|---|---|---|
| 5,000 | 25 | 20 | 38 | 21 / 38, 20 / 35, 20 / 39 | 0 | 3 / 6 | 6.7× | ✅ |
| 20,000 | 200 | 172 | 409 | 172 / 409 | 0 | 4 / 7 | 43.0× | ❌ |
<!-- /bench:latency -->
<!-- bench:latency-tansu -->
| 5,000 | 25 | 55 | 90 | 55 / 90 | 0 | 12 / 30 | 4.6× | ❌ |
<!-- /bench:latency-tansu -->
"""


def test_latency_rows_come_from_the_latency_section_only():
    assert latency_rows(LATENCY) == [(5000, 25, 20.0, 38.0), (20000, 200, 172.0, 409.0)]


def test_each_latency_row_is_two_bars_and_a_missed_target_is_red():
    svg = draw_latency(LATENCY)
    assert svg is not None
    assert svg.count("<rect x=") == 4 + 2  # p50 and p99 per row, and the two legend swatches
    assert svg.count('stroke="#dc2626"') == 2  # 172 > 140 and 409 > 350; the 25 ms row meets 40 / 150
    assert "20,000/s" in svg and "tick 200 ms" in svg


def test_no_latency_table_no_latency_picture():
    assert draw_latency("# Benchmarks\n") is None
