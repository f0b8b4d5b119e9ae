import { test } from "node:test";
import assert from "node:assert/strict";
import { denseMinutes, reasonBars, seriesTotal, sparklinePoints } from "../src/dlq/stats.js";
import { REASONS, UNKNOWN_REASON_COLOUR, reasonColour } from "../src/dlq/reasons.js";

test("stats -> bars: positive counts only, largest first, ties in validator order, scaled to the largest", () => {
  const bars = reasonBars({ stale_timestamp: 12, impossible_speed: 3, malformed_payload: 3, out_of_order: 0, brand_new: 6 });
  assert.deepEqual(
    bars.map((bar) => [bar.reason, bar.count, bar.fraction]),
    [
      ["stale_timestamp", 12, 1],
      ["brand_new", 6, 0.5],
      ["malformed_payload", 3, 0.25],
      ["impossible_speed", 3, 0.25],
    ],
  );
  assert.equal(bars[0].label, "Stale timestamp");
  assert.equal(bars[1].label, "brand_new", "an unknown reason is shown by its code");
  assert.equal(bars[1].colour, UNKNOWN_REASON_COLOUR);
  assert.deepEqual(reasonBars(undefined), []);
  assert.deepEqual(reasonBars({ a: "7", b: -1, c: NaN }), []);
});

test("every known reason has its own colour", () => {
  const colours = new Set(REASONS.map((reason) => reasonColour(reason.code)));
  assert.equal(colours.size, REASONS.length);
  assert.ok(!colours.has(UNKNOWN_REASON_COLOUR));
});

test("per-minute counts become a dense series with zeros, newest 60 minutes kept", () => {
  const m = 60_000;
  assert.deepEqual(denseMinutes([[10 * m, 2], [13 * m, 1], [13 * m + 5, 4], ["x", 1], [11 * m]]), [
    [10 * m, 2],
    [11 * m, 0],
    [12 * m, 0],
    [13 * m, 5],
  ]);
  const long = denseMinutes([[0, 1], [99 * m, 1]]);
  assert.equal(long.length, 60);
  assert.equal(long[0][0], 40 * m);
  assert.equal(seriesTotal(long), 1);
  assert.deepEqual(denseMinutes([]), []);
});

test("sparkline points span the width, baseline at the bottom, peak at the top", () => {
  assert.equal(sparklinePoints([[0, 0], [1, 4], [2, 2]], 100, 21), "0,21 50,1 100,11");
  assert.equal(sparklinePoints([[0, 0], [1, 0]], 10, 10), "0,10 10,10");
  assert.equal(sparklinePoints([[0, 3]], 10, 10), "");
});
