import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_GLIDE_MS,
  MOTION_KEY,
  arrived,
  createMotion,
  glideTo,
  motionPreference,
  positionAt,
  saveMotionPreference,
} from "../src/motion.js";

const A = [77.6, 12.97];
const B = [77.601, 12.971]; // ~150 m north-east of A
const C = [77.602, 12.97];

function between(value, low, high) {
  return value >= Math.min(low, high) - 1e-12 && value <= Math.max(low, high) + 1e-12;
}

test("a first fix is drawn where it is, at once", () => {
  const glide = glideTo(undefined, ...A, 1_000, 50_000);
  assert.deepEqual(positionAt(glide, 50_000), A);
  assert.ok(arrived(glide, 50_000));
});

test("a 1 Hz courier glides over the second between its fixes and never overshoots the newest fix", () => {
  const first = glideTo(undefined, ...A, 1_000, 10_000);
  const glide = glideTo(first, ...B, 2_000, 10_000);
  assert.equal(glide.durationMs, 1_000);
  assert.deepEqual(positionAt(glide, 10_000), A); // starts where the marker is drawn
  const half = positionAt(glide, 10_500);
  assert.ok(Math.abs(half[0] - (A[0] + B[0]) / 2) < 1e-12 && Math.abs(half[1] - (A[1] + B[1]) / 2) < 1e-12);
  let previous = A;
  for (let now = 10_000; now <= 14_000; now += 16) {
    const [lon, lat] = positionAt(glide, now);
    assert.ok(between(lon, A[0], B[0]) && between(lat, A[1], B[1]), `past the fix at ${now}`);
    assert.ok(lon >= previous[0] && lat >= previous[1], "never moves back");
    previous = [lon, lat];
  }
  assert.deepEqual(positionAt(glide, 11_000), B); // exactly the fix once the glide is over
  assert.deepEqual(positionAt(glide, 99_000), B);
  assert.ok(!arrived(glide, 10_999) && arrived(glide, 11_000));
});

test("a courier that stops stays put", () => {
  let glide = glideTo(undefined, ...A, 1_000, 0);
  glide = glideTo(glide, ...B, 2_000, 0);
  glide = glideTo(glide, ...B, 3_000, 1_000); // the same place: it has stopped
  for (const now of [1_000, 1_500, 2_000, 60_000]) assert.deepEqual(positionAt(glide, now), B);
});

test("a new fix mid-glide starts from where the marker is drawn", () => {
  const first = glideTo(glideTo(undefined, ...A, 1_000, 0), ...B, 2_000, 0);
  const drawn = positionAt(first, 400);
  const second = glideTo(first, ...C, 3_000, 400);
  assert.deepEqual(positionAt(second, 400), drawn); // no jump, back or forth
  assert.deepEqual(second.from, drawn);
  assert.deepEqual(positionAt(second, 400 + 1_000), C);
});

test("the same fix again (a status change) keeps the glide; an older or equal time, a long silence or a far jump is drawn at once", () => {
  const gliding = glideTo(glideTo(undefined, ...A, 1_000, 0), ...B, 2_000, 0);
  assert.equal(glideTo(gliding, ...B, 2_000, 300), gliding);
  for (const [lon, lat, ts] of [
    [...C, 2_000], // same time, another place
    [...C, 500], // older
    [...C, 2_000 + MAX_GLIDE_MS + 1], // after a silence longer than a glide
    [77.7, 12.97, 3_000], // 10 km in a second
  ]) {
    const glide = glideTo(gliding, lon, lat, ts, 300);
    assert.deepEqual(positionAt(glide, 300), [lon, lat]);
  }
});

test("createMotion moves the store entries' coordinates in place and forgets couriers that left", () => {
  const motion = createMotion();
  const entry = { coordinates: [...A] };
  const entries = new Map([["c1", entry]]);
  motion.retarget("c1", { lon: A[0], lat: A[1], ts: 1_000 }, 0);
  entry.coordinates = [...B]; // what the store does with the newest fix
  const coordinates = entry.coordinates;
  motion.retarget("c1", { lon: B[0], lat: B[1], ts: 2_000 }, 0);
  assert.equal(motion.step(entries, 0), true);
  assert.equal(entry.coordinates, coordinates); // the same array: the map source holds it
  assert.deepEqual(entry.coordinates, A);
  assert.equal(motion.step(entries, 500), true);
  assert.ok(between(entry.coordinates[1], A[1], B[1]));
  assert.deepEqual(motion.drawnAt("c1", 500), entry.coordinates);
  assert.equal(motion.step(entries, 1_000), false); // arrived: nothing left to animate
  assert.deepEqual(entry.coordinates, B);
  entries.delete("c1");
  motion.step(entries, 1_100);
  assert.equal(motion.glides.size, 0);
  assert.equal(motion.drawnAt("c1", 1_100), null);
});

test("retargetFrame glides the couriers a frame brought; stop puts every marker back on its fix", () => {
  const motion = createMotion();
  const entry = (lon, lat, ts) => ({ courier: { id: "x", lon, lat, ts }, coordinates: [lon, lat] });
  const entries = new Map([["c1", entry(...A, 1_000)], ["c2", entry(...C, 1_000)]]);
  motion.retargetFrame(entries, { type: "snapshot", couriers: [] }, 0);
  assert.deepEqual([...motion.glides.keys()], ["c1", "c2"]);
  entries.set("c1", entry(...B, 2_000)); // the store took c1's newest fix
  motion.retargetFrame(entries, { type: "delta", couriers: [{ id: "c1" }, null, { id: "gone" }] }, 0);
  assert.deepEqual(entries.get("c1").coordinates, A); // still drawn where it was, until it glides
  motion.step(entries, 500);
  assert.ok(between(entries.get("c1").coordinates[1], A[1], B[1]) && entries.get("c1").coordinates[1] !== B[1]);
  motion.stop(entries);
  assert.deepEqual(entries.get("c1").coordinates, B);
  assert.equal(motion.glides.size, 0);
});

test("the switch is remembered: on unless this browser said off", () => {
  const values = new Map();
  const storage = { getItem: (key) => values.get(key) ?? null, setItem: (key, value) => values.set(key, value) };
  assert.equal(motionPreference(storage), true);
  saveMotionPreference(storage, false);
  assert.equal(values.get(MOTION_KEY), "off");
  assert.equal(motionPreference(storage), false);
  saveMotionPreference(storage, true);
  assert.equal(motionPreference(storage), true);
  const broken = { getItem: () => { throw new Error("denied"); }, setItem: () => { throw new Error("denied"); } };
  assert.equal(motionPreference(broken), true);
  saveMotionPreference(broken, false); // no throw
  assert.equal(motionPreference(null), true);
});
