import { test } from "node:test";
import assert from "node:assert/strict";
import { extendTrail, mergeTrails, trailGeoJSON } from "../src/trail.js";

test("extendTrail prepends newer fixes only, newest first, capped", () => {
  const trail = [[2_000, 12.9, 77.5]];
  extendTrail(trail, { ts: 1_000, lat: 1, lon: 1 });
  extendTrail(trail, { ts: 2_000, lat: 1, lon: 1 });
  assert.equal(trail.length, 1);
  extendTrail(trail, { ts: 3_000, lat: 12.91, lon: 77.51 });
  assert.deepEqual(trail[0], [3_000, 12.91, 77.51]);
  extendTrail(trail, { ts: 4_000, lat: 0, lon: 0 }, 2);
  assert.deepEqual(trail.map((point) => point[0]), [4_000, 3_000]);
});

test("mergeTrails: fetched plus live, deduplicated by ts, newest first, malformed dropped", () => {
  const fetched = [[3_000, 1, 1], [2_000, 1, 1], ["x", 1, 1], [1_000, 1, 1]];
  const live = [[5_000, 2, 2], [3_000, 1, 1]];
  assert.deepEqual(
    mergeTrails(fetched, live).map((point) => point[0]),
    [5_000, 3_000, 2_000, 1_000],
  );
  assert.equal(mergeTrails(fetched, live, 2).length, 2);
});

test("trailGeoJSON is a lon/lat LineString once there are two points", () => {
  assert.equal(trailGeoJSON([[1, 12.9, 77.5]]).features.length, 0);
  const line = trailGeoJSON([[2, 12.91, 77.51], [1, 12.9, 77.5]]).features[0];
  assert.deepEqual(line.geometry, { type: "LineString", coordinates: [[77.51, 12.91], [77.5, 12.9]] });
});
