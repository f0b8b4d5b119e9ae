"""Pictures of BENCHMARKS.md's tables, drawn from the tables themselves so they can't disagree with them.

- ``docs/broker-soak.svg``: the two "broker over time" tables (sections ``soak`` and ``soak-tansu``) as one
  picture. Hop p50 on a log scale against time; a hollow point is a window some of whose pings never
  arrived, a cross at the top edge one none of whose pings did.
- ``docs/latency.svg``: the end-to-end latency table (section ``latency``): p50 and p99 of each row as
  bars, each with its target as a line across it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.common import REPORT, ROOT
from bench.latency import targets

CHART = ROOT / "docs" / "broker-soak.svg"
LATENCY_CHART = ROOT / "docs" / "latency.svg"
SERIES = (("soak", "embedded Apache Kafka", "#2563eb"), ("soak-tansu", "embedded Tansu", "#dc2626"))
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 660, 300, 80, 20, 30, 45
Y_MIN, Y_MAX = 1.0, 100_000.0  # ms, log scale


def table_rows(report: str, section: str) -> list[list[str]]:
    """The cells of each data row (first cell a number) of the table in a section of BENCHMARKS.md."""
    match = re.search(rf"<!-- bench:{section} -->(.*?)<!-- /bench:{section} -->", report, re.DOTALL)
    if not match:
        return []
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in match.group(1).splitlines()]
    return [cells for cells in rows if cells[0].replace(",", "").isdigit()]


def windows(report: str, section: str) -> list[tuple[float, float | None, float]]:
    """(t in s, hop p50 in ms or None when nothing arrived, share arrived) per row of a section's table."""
    return [
        (
            float(cells[0]),
            None if cells[1] == "—" else float(cells[1].replace(",", "")),
            float(cells[5].rstrip("%")) / 100,
        )
        for cells in table_rows(report, section)
        if len(cells) == 6
    ]


def _x(t: float, t_max: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * t / t_max


def _y(ms: float) -> float:
    span = math.log10(Y_MAX) - math.log10(Y_MIN)
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (math.log10(max(ms, Y_MIN)) - math.log10(Y_MIN)) / span)


def draw(report: str) -> str | None:
    data = [(label, colour, windows(report, section)) for section, label, colour in SERIES]
    data = [(label, colour, rows) for label, colour, rows in data if rows]
    if not data:
        return None
    t_max = max(t for _, _, rows in data for t, _, _ in rows)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>'
        ),
        (
            f'<text x="{LEFT}" y="18" font-weight="bold">One produce → consume hop at 5,000 pings/s: '
            f"p50 per 10 s window</text>"
        ),
    ]
    for exponent in range(6):
        y = _y(10**exponent)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{10**exponent:,} ms</text>'
        )
    for second in range(0, int(t_max) + 1, 20):
        x = _x(second, t_max)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{second} s</text>')
    for index, (label, colour, rows) in enumerate(data):
        points = " ".join(f"{_x(t, t_max):.1f},{_y(ms):.1f}" for t, ms, _ in rows if ms is not None)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for t, ms, arrived in rows:
            x = _x(t, t_max)
            if ms is None:
                parts.append(f'<text x="{x:.1f}" y="{TOP + 4}" text-anchor="middle" fill="{colour}">✕</text>')
            else:  # hollow: part of the window's pings never arrived, so its p50 flatters it
                fill = colour if arrived >= 0.99 else "white"
                parts.append(f'<circle cx="{x:.1f}" cy="{_y(ms):.1f}" r="3.5" fill="{fill}" stroke="{colour}"/>')
        legend_y = HEIGHT - 12
        legend_x = LEFT + index * 220
        parts.append(
            f'<rect x="{legend_x}" y="{legend_y - 9}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{legend_x + 18}" y="{legend_y + 1}">{label}</text>'
        )
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" text-anchor="end" fill="#6b7280">'
        "never arrived: ○ part, ✕ all of the window</text></svg>"
    )
    return "\n".join(parts) + "\n"


def latency_rows(report: str) -> list[tuple[int, int, float, float]]:
    """(pings/s, tick ms, p50 ms, p99 ms) per row of the latency section's table."""
    return [
        (int(cells[0].replace(",", "")), int(cells[1]), float(cells[2]), float(cells[3]))
        for cells in table_rows(report, "latency")
        if len(cells) >= 4
    ]


def draw_latency(report: str) -> str | None:
    rows = latency_rows(report)
    if not rows:
        return None
    width, height, left, top, bottom = 660, 300, 60, 30, 60
    y_max = max(100.0, *(max(p99, targets(tick)[1]) for _, tick, _, p99 in rows)) * 1.1
    y_max = math.ceil(y_max / 100) * 100

    def y(ms: float) -> float:
        return top + (height - top - bottom) * (1 - ms / y_max)

    group = (width - left - 20) / len(rows)
    bar = min(40.0, group / 3)
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>'
        ),
        (
            f'<text x="{left}" y="18" font-weight="bold">Producer → browser latency: p50 and p99 against '
            f"their targets</text>"
        ),
    ]
    parts.extend(
        f'<line x1="{left}" x2="{width - 20}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" stroke="#e5e7eb"/>'
        f'<text x="{left - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">{ms} ms</text>'
        for ms in range(0, int(y_max) + 1, 100)
    )
    for index, (rate, tick, p50, p99) in enumerate(rows):
        x0 = left + index * group + (group - 2 * bar - 6) / 2
        for offset, value, target, colour in (
            (0, p50, targets(tick)[0], "#2563eb"),
            (bar + 6, p99, targets(tick)[1], "#93c5fd"),
        ):
            x = x0 + offset
            ok = value <= target
            parts.append(
                f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(value):.1f}" fill="{colour}"/>'
                f'<text x="{x + bar / 2:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle">{value:.0f}</text>'
                f'<line x1="{x - 4:.1f}" x2="{x + bar + 4:.1f}" y1="{y(target):.1f}" y2="{y(target):.1f}" '
                f'stroke="{"#16a34a" if ok else "#dc2626"}" stroke-width="2" stroke-dasharray="5 3"/>'
            )
        centre = x0 + bar + 3
        parts.append(
            f'<text x="{centre:.1f}" y="{height - bottom + 18}" text-anchor="middle">{rate:,}/s</text>'
            f'<text x="{centre:.1f}" y="{height - bottom + 33}" text-anchor="middle" fill="#6b7280">'
            f"tick {tick} ms</text>"
        )
    legend_y = height - 8
    parts.append(
        f'<rect x="{left}" y="{legend_y - 9}" width="12" height="12" fill="#2563eb"/>'
        f'<text x="{left + 18}" y="{legend_y + 1}">p50</text>'
        f'<rect x="{left + 60}" y="{legend_y - 9}" width="12" height="12" fill="#93c5fd"/>'
        f'<text x="{left + 78}" y="{legend_y + 1}">p99</text>'
        f'<line x1="{left + 120}" x2="{left + 145}" y1="{legend_y - 3}" y2="{legend_y - 3}" stroke="#16a34a" '
        f'stroke-width="2" stroke-dasharray="5 3"/>'
        f'<text x="{left + 151}" y="{legend_y + 1}">target (red when missed)</text></svg>'
    )
    return "\n".join(parts) + "\n"


def redraw() -> list[Path]:
    """Redraw every picture whose table is in BENCHMARKS.md; returns the files written."""
    report = REPORT.read_text()
    written = []
    for path, svg in ((CHART, draw(report)), (LATENCY_CHART, draw_latency(report))):
        if svg is not None:
            path.write_text(svg)
            written.append(path)
    return written
