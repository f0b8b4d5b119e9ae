"""docs/broker-soak.svg: the two "broker over time" tables of BENCHMARKS.md as one picture.

Drawn from the tables themselves (sections ``soak`` and ``soak-tansu``), so the picture can't disagree with
them; redrawn whenever either section is rewritten. Hop p50 on a log scale against time; a hollow point is
a window some of whose pings never arrived, a cross at the top edge one none of whose pings did.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.common import REPORT, ROOT

CHART = ROOT / "docs" / "broker-soak.svg"
SERIES = (("soak", "embedded Apache Kafka", "#2563eb"), ("soak-tansu", "embedded Tansu", "#dc2626"))
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 660, 300, 80, 20, 30, 45
Y_MIN, Y_MAX = 1.0, 100_000.0  # ms, log scale


def windows(report: str, section: str) -> list[tuple[float, float | None, float]]:
    """(t in s, hop p50 in ms or None when nothing arrived, share arrived) per row of a section's table."""
    match = re.search(rf"<!-- bench:{section} -->(.*?)<!-- /bench:{section} -->", report, re.S)
    if not match:
        return []
    rows = []
    for line in match.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].isdigit():
            rows.append((float(cells[0]), None if cells[1] == "—" else float(cells[1].replace(",", "")),
                         float(cells[5].rstrip("%")) / 100))
    return rows


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
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{LEFT}" y="18" font-weight="bold">One produce → consume hop at 5,000 pings/s: '
             f'p50 per 10 s window</text>']
    for exponent in range(0, 6):
        y = _y(10 ** exponent)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** exponent:,} ms</text>')
    for t in range(0, int(t_max) + 1, 20):
        x = _x(t, t_max)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{t} s</text>')
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
        parts.append(f'<rect x="{legend_x}" y="{legend_y - 9}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{legend_x + 18}" y="{legend_y + 1}">{label}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 12}" text-anchor="end" fill="#6b7280">'
                 'never arrived: ○ part, ✕ all of the window</text></svg>')
    return "\n".join(parts) + "\n"


def redraw() -> Path | None:
    svg = draw(REPORT.read_text())
    if svg is None:
        return None
    CHART.write_text(svg)
    return CHART
