// `api/dlq/stats` turned into what the header draws: bars per reason and a per-minute sparkline. Pure
// geometry in plain numbers; chart.js turns it into SVG elements.

import { reasonColour, reasonLabel, reasonRank } from "./reasons.js";

/**
 * One bar per reason with a positive count, largest first (ties in the server's order, then by code):
 * [{ reason, label, count, fraction (of the largest, 0..1), colour }].
 */
export function reasonBars(byReason) {
  const bars = [];
  for (const [reason, count] of Object.entries(byReason || {})) {
    if (!Number.isFinite(count) || count <= 0) continue;
    bars.push({ reason, label: reasonLabel(reason), count, colour: reasonColour(reason) });
  }
  bars.sort(
    (a, b) => b.count - a.count || reasonRank(a.reason) - reasonRank(b.reason) || (a.reason < b.reason ? -1 : 1),
  );
  const largest = bars.length > 0 ? bars[0].count : 0;
  for (const bar of bars) bar.fraction = largest > 0 ? bar.count / largest : 0;
  return bars;
}

export const MINUTE_MS = 60_000;

/**
 * Per-minute counts as a dense series: the server may leave out empty minutes, so fill them with zeros from
 * the first to the last minute given (at most `maxMinutes`, the newest kept). Returns [[minuteStartMs, n]].
 */
export function denseMinutes(perMinute, maxMinutes = 60) {
  const counts = new Map();
  for (const pair of perMinute || []) {
    if (!Array.isArray(pair) || !Number.isFinite(pair[0]) || !Number.isFinite(pair[1])) continue;
    const minute = Math.floor(pair[0] / MINUTE_MS) * MINUTE_MS;
    counts.set(minute, (counts.get(minute) || 0) + pair[1]);
  }
  if (counts.size === 0) return [];
  const last = Math.max(...counts.keys());
  const first = Math.max(Math.min(...counts.keys()), last - (maxMinutes - 1) * MINUTE_MS);
  const series = [];
  for (let minute = first; minute <= last; minute += MINUTE_MS) series.push([minute, counts.get(minute) || 0]);
  return series;
}

/**
 * Polyline points ("x,y x,y ...") of a sparkline `width` x `height` px for a dense series; y grows down, the
 * baseline is at `height` and the largest count touches 1 px from the top. Empty string for < 2 points.
 */
export function sparklinePoints(series, width, height) {
  if (series.length < 2) return "";
  const largest = Math.max(1, ...series.map((pair) => pair[1]));
  const step = width / (series.length - 1);
  return series
    .map(([, count], index) => {
      const x = index * step;
      const y = height - (count / largest) * (height - 1);
      return `${+x.toFixed(1)},${+y.toFixed(1)}`;
    })
    .join(" ");
}

/** Sum of a series' counts. */
export function seriesTotal(series) {
  return series.reduce((sum, pair) => sum + pair[1], 0);
}
