import { test } from "node:test";
import assert from "node:assert/strict";
import { createFleet, fleetAt } from "../src/playback/track.js";

const COURIERS = 2000;
const POINTS = 121; // an hour at the step tier's 30 s
const STEP_MS = 30_000;
const FROM = 1_795_000_000_000;

/** The fleet window's answer for `COURIERS` couriers moving east at their own latitude. */
function fleetAnswer() {
  const couriers = [];
  for (let courier = 0; courier < COURIERS; courier += 1) {
    const buffer = Buffer.alloc(POINTS * 12);
    for (let point = 0; point < POINTS; point += 1) {
      buffer.writeInt32LE(point * STEP_MS + (courier % 1000), point * 12);
      buffer.writeInt32LE(12_900_000 + courier * 10, point * 12 + 4);
      buffer.writeInt32LE(77_500_000 + point * 300, point * 12 + 8);
    }
    couriers.push({ id: `courier-${courier}`, points: buffer.toString("base64") });
  }
  return { from: FROM, to: FROM + (POINTS - 1) * STEP_MS, couriers };
}

test("a fleet frame of 2,000 couriers interpolates every one of them between its fixes", (t) => {
  const fleet = createFleet(fleetAnswer());
  assert.equal(fleet.ids.length, COURIERS);
  assert.equal(fleet.points, COURIERS * POINTS);
  const coordinates = [];
  fleetAt(fleet, FROM + 45_000 + 999, 2 * STEP_MS, coordinates);
  assert.equal(coordinates.length, COURIERS);
  // courier 0: fixes at 30 s (lon +300 µdeg) and 60 s (+600): at 45.999 s it is a little past half way
  assert.ok(Math.abs(coordinates[0][0] - (77.5 + 0.0003 + (0.0003 * 15_999) / 30_000)) < 1e-9, coordinates[0]);
  assert.equal(coordinates[5][1], 12.90005);
  // before a courier's first fix it is not drawn (courier k's first is at k % 1000 ms)
  assert.equal(fleetAt(fleet, FROM + 500, STEP_MS, coordinates).length, 2 * 501);

  // The cost of a frame while playing at 60× (a second of history per 16 ms frame), reported, not asserted:
  // speed targets live in `make bench` (bench/history.py measures the page in Chromium).
  const frames = 600;
  const started = performance.now();
  for (let frame = 0; frame < frames; frame += 1) fleetAt(fleet, FROM + frame * 1_000, 2 * STEP_MS, coordinates);
  const perFrame = (performance.now() - started) / frames;
  t.diagnostic(`fleet frame, ${COURIERS} couriers: ${perFrame.toFixed(3)} ms of interpolation`);
  assert.equal(coordinates.length, COURIERS);
});
