import { test } from "node:test";
import assert from "node:assert/strict";
import * as format from "../src/format.js";

test("ago table", () => {
  const now = 1_000_000_000;
  const rows = [
    [now + 5_000, "just now"],
    [now - 400, "just now"],
    [now - 12_000, "12 s ago"],
    [now - 59_999, "59 s ago"],
    [now - 60_000, "1 min ago"],
    [now - 3_725_000, "1 h 2 min ago"],
    [now - 3 * 86_400_000, "3 d ago"],
    [NaN, "—"],
  ];
  for (const [ts, expected] of rows) assert.equal(format.ago(ts, now), expected);
});

test("speed, counts, rates, latency, heading", () => {
  assert.equal(format.speedKmh(5), "18.0 km/h");
  assert.equal(format.speedKmh(null), "—");
  assert.equal(format.count(12345), "12,345");
  assert.equal(format.rate(3.14159), "3.1");
  assert.equal(format.rate(1234.5), "1,235");
  assert.equal(format.latency(41.6), "42 ms");
  assert.equal(format.latency(25_000), "25 s");
  assert.equal(format.heading(90), "90° E");
  assert.equal(format.heading(-45), "315° NW");
  assert.equal(format.coordinates(12.971234, 77.594567), "12.97123, 77.59457");
});
