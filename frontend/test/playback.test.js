import { test } from "node:test";
import assert from "node:assert/strict";
import {
  SPEEDS,
  advance,
  createClock,
  ended,
  fraction,
  pause,
  play,
  playbackDurationMs,
  seek,
  setSpeed,
  timeAtFraction,
} from "../src/playback/clock.js";
import {
  indexAt,
  positionAt,
  routeUpTo,
  trackBounds,
  trackFromPacked,
  trackFromPoints,
} from "../src/playback/track.js";
import { ghostCollection, ghostListUrl, ghostsInWindow, ghostsPassed, pingTime } from "../src/playback/ghosts.js";
import { clockLabel, fleetUrl, fromLocalInput, readForm, toLocalInput, trailUrl } from "../src/playback/query.js";

/** Run a clock with a fixed frame interval until it stops; the wall time it took. */
function wallTimeToEnd(clock, frameMs = 16) {
  play(clock);
  let wall = 0;
  while (clock.playing) {
    advance(clock, frameMs);
    wall += frameMs;
  }
  return wall;
}

test("the speed control changes how long a window takes to play, 1× to 60×", () => {
  assert.deepEqual([...SPEEDS], [1, 2, 5, 10, 30, 60]);
  const minute = { from: 1_000_000, to: 1_060_000 };
  const atOne = wallTimeToEnd(createClock({ ...minute, speed: 1 }));
  const atTen = wallTimeToEnd(createClock({ ...minute, speed: 10 }));
  const atSixty = wallTimeToEnd(createClock({ ...minute, speed: 60 }));
  assert.ok(Math.abs(atOne - 60_000) <= 16, atOne);
  assert.ok(Math.abs(atTen - 6_000) <= 16, atTen);
  assert.ok(Math.abs(atSixty - 1_000) <= 16, atSixty);
  assert.equal(playbackDurationMs(createClock({ ...minute, speed: 30 })), 2_000);
});

test("the clock stops at the end, plays again from the start, pauses, seeks within the window", () => {
  const clock = createClock({ from: 0, to: 1000, speed: 2 });
  assert.equal(advance(clock, 100), 0); // paused: nothing moves
  play(clock);
  assert.equal(advance(clock, 100), 200);
  setSpeed(clock, 10);
  assert.equal(advance(clock, 500), 1000);
  assert.equal(clock.playing, false);
  assert.ok(ended(clock));
  play(clock);
  assert.equal(clock.t, 0);
  pause(clock);
  assert.equal(advance(clock, 50), 0);
  assert.equal(seek(clock, 5000).t, 1000);
  assert.equal(seek(clock, -5).t, 0);
  assert.equal(seek(clock, 250).t, 250);
  assert.equal(fraction(clock), 0.25);
  assert.equal(timeAtFraction(clock, 500, 1000), 500);
  assert.throws(() => setSpeed(clock, 0), RangeError);
  assert.throws(() => createClock({ from: 5, to: 4 }), RangeError);
});

const route = trackFromPoints([
  [3_000, 12.93, 77.63],
  [1_000, 12.91, 77.61],
  ["bad", 1, 1],
  [2_000, 12.92, 77.62],
  [60_000, 12.99, 77.69],
]);

test("a track is sorted and malformed points are dropped", () => {
  assert.deepEqual([...route.t], [1_000, 2_000, 3_000, 60_000]);
  assert.deepEqual(trackBounds(route), [
    [77.61, 12.91],
    [77.69, 12.99],
  ]);
  assert.equal(trackBounds(trackFromPoints([])), null);
});

test("the marker passes through every recorded point and moves straight between them", () => {
  for (let index = 0; index < route.t.length; index += 1) {
    const at = positionAt(route, route.t[index], { maxGapMs: 10_000 });
    assert.deepEqual([at.lat, at.lon, at.index], [route.lat[index], route.lon[index], index]);
  }
  const half = positionAt(route, 1_500);
  assert.ok(Math.abs(half.lat - 12.915) < 1e-12 && Math.abs(half.lon - 77.615) < 1e-12);
  assert.equal(positionAt(route, 999), null); // before the first fix
});

test("across a long silence the marker waits at its last fix, and goes after it", () => {
  const waiting = positionAt(route, 30_000, { maxGapMs: 10_000 });
  assert.deepEqual([waiting.lat, waiting.lon], [12.93, 77.63]);
  assert.deepEqual([positionAt(route, 65_000, { maxGapMs: 10_000 }).lat], [12.99]);
  assert.equal(positionAt(route, 70_001, { maxGapMs: 10_000 }), null);
});

test("indexAt walks on from the previous frame and searches after a seek", () => {
  const times = Array.from({ length: 1000 }, (_, index) => [index * 10, 0, 0]);
  const long = trackFromPoints(times);
  assert.equal(indexAt(long, 55, 3), 5);
  assert.equal(indexAt(long, 9_000, 3), 900); // far: binary search
  assert.equal(indexAt(long, 20, 900), 2); // backwards: binary search
  assert.equal(indexAt(long, -1, 0), -1);
  assert.equal(indexAt(long, 1e9, 0), 999);
});

test("the route drawn so far ends at the marker", () => {
  assert.deepEqual(routeUpTo(route, positionAt(route, 2_500)), [
    [77.61, 12.91],
    [77.62, 12.92],
    [77.625, 12.925],
  ]);
  assert.deepEqual(routeUpTo(route, positionAt(route, 2_000)), [
    [77.61, 12.91],
    [77.62, 12.92],
  ]);
  assert.deepEqual(routeUpTo(route, null), []);
});

test("packed fleet points decode (ms after from, micro-degrees, little-endian) and are sorted", () => {
  const buffer = Buffer.alloc(24);
  buffer.writeInt32LE(30_000, 0);
  buffer.writeInt32LE(-33_868_820, 4);
  buffer.writeInt32LE(151_209_296, 8);
  buffer.writeInt32LE(0, 12);
  buffer.writeInt32LE(12_971_600, 16);
  buffer.writeInt32LE(77_594_600, 20);
  const track = trackFromPacked(buffer.toString("base64"), 1_000_000);
  assert.deepEqual([...track.t], [1_000_000, 1_030_000]);
  assert.deepEqual([...track.lat], [12.9716, -33.86882]);
  assert.deepEqual([...track.lon], [77.5946, 151.209296]);
  assert.equal(trackFromPacked(null, 0).t.length, 0);
});

test("ghosts: placed by their own ts when it is in the window, else when rejected; passed ones shown", () => {
  const rows = [
    { id: "0:1", lat: 12.9, lon: 77.6, rejected_at: 50_000, reason: "stale_timestamp" },
    { id: "0:2", lat: 12.8, lon: 77.5, rejected_at: 20_000, reason: "impossible_speed" },
    { id: "0:3", lat: null, lon: null, rejected_at: 21_000, reason: "invalid_coordinates" },
    { id: "0:4", lat: 12.7, lon: 77.4, rejected_at: 90_000, reason: "future_timestamp" },
  ];
  const details = new Map([
    ["0:1", { payload_json: { ts: 10_000 } }], // recorded at 10 s, rejected at 50 s
    ["0:4", { payload_json: { ts: 999_999 } }], // its own ts outside the window: when it was rejected
  ]);
  const ghosts = ghostsInWindow(rows, details, 0, 60_000);
  assert.deepEqual(
    ghosts.map((ghost) => [ghost.id, ghost.at]),
    [
      ["0:1", 10_000],
      ["0:2", 20_000],
    ],
  );
  assert.equal(ghostsPassed(ghosts, 9_999), 0);
  assert.equal(ghostsPassed(ghosts, 10_000), 1);
  assert.equal(ghostsPassed(ghosts, 60_000), 2);
  const collection = ghostCollection(ghosts, 1);
  assert.deepEqual(collection.features[0].geometry.coordinates, [77.6, 12.9]);
  assert.equal(collection.features[0].properties.reason, "stale_timestamp");
  assert.equal(pingTime("2026-01-01T00:00:00Z"), Date.UTC(2026, 0, 1));
  assert.equal(pingTime("2026-01-01T00:00:00"), null); // no offset: the validator rejects those too
  assert.equal(pingTime(Number.NaN), null);
});

test("the URLs playback asks for", () => {
  assert.equal(trailUrl("team/7", 1.5, 2), "api/couriers/team%2F7/trail?from=1&to=2");
  assert.equal(fleetUrl(10, 20), "api/history/fleet?from=10&to=20");
  assert.equal(ghostListUrl("c 1", 0, 1000), "api/dlq?partner=c+1&since=0&until=601000&limit=100");
});

test("the form: local times both ways, a courier or the whole fleet, one-line errors", () => {
  const at = new Date(2026, 10, 27, 9, 5, 7).getTime();
  assert.equal(toLocalInput(at), "2026-11-27T09:05:07");
  assert.equal(fromLocalInput("2026-11-27T09:05:07"), at);
  assert.equal(fromLocalInput("2026-11-27T09:05"), at - 7_000);
  assert.equal(fromLocalInput("2026-02-31T00:00"), null);
  assert.equal(fromLocalInput("yesterday"), null);
  assert.equal(clockLabel(at), "09:05:07");
  assert.deepEqual(readForm({ courier: " c1 ", from: "2026-11-27T09:00", to: "2026-11-27T11:00" }), {
    partnerId: "c1",
    from: new Date(2026, 10, 27, 9).getTime(),
    to: new Date(2026, 10, 27, 11).getTime(),
  });
  assert.match(readForm({ courier: "", from: "2026-11-27T09:00", to: "2026-11-27T11:00" }).error, /at most an hour/);
  assert.equal(readForm({ courier: "", from: "2026-11-27T09:00", to: "2026-11-27T10:00" }).partnerId, null);
  assert.match(readForm({ courier: "c1", from: "2026-11-27T10:00", to: "2026-11-27T09:00" }).error, /before/);
  assert.match(readForm({ courier: "c1", from: "", to: "2026-11-27T09:00" }).error, /start and an end/);
});

test("the route kept between frames grows with the fixes passed and shrinks after a seek back", () => {
  const cache = { fixes: [], upTo: -1 };
  assert.equal(routeUpTo(route, positionAt(route, 1_500), cache).length, 2);
  assert.deepEqual(routeUpTo(route, positionAt(route, 3_000), cache), [
    [77.61, 12.91],
    [77.62, 12.92],
    [77.63, 12.93],
  ]);
  assert.equal(cache.fixes.length, 3);
  assert.deepEqual(routeUpTo(route, positionAt(route, 1_000), cache), [[77.61, 12.91]]);
  assert.equal(cache.fixes.length, 1);
  assert.deepEqual(routeUpTo(route, null, cache), []);
});
