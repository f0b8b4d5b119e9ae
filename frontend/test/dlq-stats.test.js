import { test } from "node:test";
import assert from "node:assert/strict";
import { denseMinutes, reasonBars, seriesTotal, sparklinePoints } from "../src/dlq/stats.js";
import {
  REASON_PALETTE,
  UNKNOWN_REASON_COLOUR,
  reasonCatalogue,
  reasonColour,
  reasonColourExpression,
  reasonLabel,
  useReasons,
} from "../src/dlq/reasons.js";

// A server's reason list (GET /api/config "reasons"), in its order.
const SERVER_REASONS = ["malformed_payload", "stale_timestamp", "out_of_order", "impossible_speed"];

test("stats -> bars: positive counts only, largest first, ties in the server's order, scaled to the largest", () => {
  useReasons(SERVER_REASONS);
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

test("every reason the server lists has its own colour, up to the palette's size", () => {
  const codes = REASON_PALETTE.map((_, index) => `reason_${index}`);
  const reasons = useReasons(codes);
  assert.deepEqual(
    reasons.map((reason) => reason.code),
    codes,
  );
  const colours = new Set(codes.map((code) => reasonColour(code)));
  assert.equal(colours.size, codes.length);
  assert.ok(!colours.has(UNKNOWN_REASON_COLOUR));
});

test("a reason's label is its code in words; the colours follow the server's order", () => {
  const codes = ["malformed_payload", "missing_partner_id", "invalid_coordinates", "out_of_order", "processing_failed"];
  assert.deepEqual(
    reasonCatalogue(codes).map(({ label }) => label),
    ["Malformed payload", "Missing partner id", "Invalid coordinates", "Out of order", "Processing failed"],
  );
  assert.deepEqual(
    reasonCatalogue(codes).map(({ colour }) => colour),
    REASON_PALETTE.slice(0, 5),
  );
  assert.deepEqual(
    reasonCatalogue(["a", 3, "", null, "a", "b"]).map(({ code }) => code),
    ["a", "b"],
    "junk and repeats are left out",
  );
});

test("before the server's list arrives (or when it cannot be read) every reason renders by its code", () => {
  useReasons(undefined);
  assert.equal(reasonLabel("stale_timestamp"), "stale_timestamp");
  assert.equal(reasonLabel(undefined), "unknown");
  assert.equal(reasonColour("stale_timestamp"), UNKNOWN_REASON_COLOUR);
  assert.equal(reasonColourExpression(), UNKNOWN_REASON_COLOUR, "a match with no codes is not a valid expression");
  useReasons(["stale_timestamp"]);
  assert.deepEqual(reasonColourExpression(), ["match", ["get", "reason"], "stale_timestamp", REASON_PALETTE[0], UNKNOWN_REASON_COLOUR]);
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
