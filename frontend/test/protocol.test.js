import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyCourierFrame,
  backoffDelayMs,
  createStore,
  featureCollection,
  followMessage,
  frameLatencyMs,
  getCourier,
  paddedBbox,
  classProperties,
  couriersInBox,
  parseFrame,
  viewportMessage,
} from "../src/protocol.js";

function courier(id, overrides = {}) {
  return {
    id,
    lat: 12.97,
    lon: 77.59,
    ts: 1_000,
    speed: 5,
    heading: 90,
    vehicle: "bike",
    status: "online",
    order_id: null,
    ...overrides,
  };
}

/** Every courier appears exactly once in the map collection, in its class, at its position. */
function assertConsistent(store) {
  const collection = featureCollection(store);
  let points = 0;
  for (const feature of collection.features) {
    assert.equal(feature.geometry.type, "MultiPoint");
    points += feature.geometry.coordinates.length;
  }
  assert.equal(points, store.entries.size);
  for (const [id, entry] of store.entries) {
    assert.deepEqual(entry.coordinates, [entry.courier.lon, entry.courier.lat], id);
    const feature = collection.features.find((f) => f.properties === entry.properties);
    assert.ok(feature.geometry.coordinates.includes(entry.coordinates), `${id} drawn in its class`);
    assert.equal(entry.properties.status, entry.courier.status);
    assert.equal(entry.properties.vehicle, entry.courier.vehicle);
  }
}

test("parseFrame accepts typed objects and rejects everything else", () => {
  assert.deepEqual(parseFrame('{"type":"pong"}'), { type: "pong" });
  for (const bad of ["[]", "null", "42", '"x"', '{"kind":"delta"}', '{"type":3}']) {
    assert.throws(() => parseFrame(bad), /frame/, bad);
  }
  assert.throws(() => parseFrame("{not json"), SyntaxError);
});

test("snapshot replaces all state", () => {
  const store = createStore();
  applyCourierFrame(store, { type: "snapshot", couriers: [courier("a"), courier("b")] });
  applyCourierFrame(store, { type: "snapshot", couriers: [courier("c", { lat: 13 })] });
  assert.deepEqual([...store.entries.keys()], ["c"]);
  assert.equal(getCourier(store, "a"), undefined);
  assert.equal(getCourier(store, "c").lat, 13);
  assert.equal(store.dirty, true);
  assertConsistent(store);
});

test("delta upserts and removes, mutating positions in place", () => {
  const store = createStore();
  applyCourierFrame(store, { type: "snapshot", couriers: [courier("a"), courier("b"), courier("c")] });
  const pairOfB = store.entries.get("b").coordinates;
  store.dirty = false;

  applyCourierFrame(store, {
    type: "delta",
    seq: 1,
    couriers: [courier("b", { ts: 2_000, lat: 12.5, lon: 77.1, status: "idle" }), courier("d")],
    removed: ["a"],
  });

  assert.equal(store.dirty, true);
  assert.equal(store.entries.get("b").coordinates, pairOfB, "the coordinate pair is reused");
  assert.deepEqual(pairOfB, [77.1, 12.5]);
  assert.equal(store.entries.get("b").properties.status, "idle");
  assert.deepEqual([...store.entries.keys()].sort(), ["b", "c", "d"]);
  assertConsistent(store);
});

test("one MultiPoint per (status, vehicle) class, shared properties, live couriers drawn last", () => {
  const store = createStore();
  applyCourierFrame(store, {
    type: "snapshot",
    couriers: [
      courier("a"),
      courier("b"),
      courier("c", { status: "offline" }),
      courier("d", { status: "online", vehicle: "car" }),
    ],
  });
  assert.equal(store.entries.get("a").properties, store.entries.get("b").properties);
  assert.equal(store.entries.get("a").properties, classProperties("online", "bike"));
  assert.ok(Object.isFrozen(classProperties("online", "bike")));
  const collection = featureCollection(store);
  assert.equal(collection.features.length, 3);
  assert.equal(collection.features[0].properties.status, "offline", "offline drawn first, underneath");
  const bikes = collection.features.find((f) => f.properties === classProperties("online", "bike"));
  assert.equal(bikes.geometry.coordinates.length, 2);
  assertConsistent(store);
});

test("couriersInBox finds couriers by position", () => {
  const store = createStore();
  applyCourierFrame(store, {
    type: "snapshot",
    couriers: [courier("in", { lat: 12.95, lon: 77.6 }), courier("out", { lat: 13.2, lon: 77.6 })],
  });
  assert.deepEqual(couriersInBox(store, 77.5, 12.9, 77.7, 13.0), ["in"]);
  assert.deepEqual(couriersInBox(store, 0, 0, 1, 1), []);
});

test("newer wins: an older fix never moves a courier backwards; an equal one keeps the fix, takes the status", () => {
  const store = createStore();
  applyCourierFrame(store, { type: "snapshot", couriers: [courier("a", { ts: 5_000, lat: 12.9 })] });
  store.dirty = false;
  applyCourierFrame(store, { type: "delta", couriers: [courier("a", { ts: 4_000, lat: 10 })], removed: [] });
  assert.equal(getCourier(store, "a").lat, 12.9);
  assert.equal(store.dirty, false, "nothing changed, nothing to redraw");
  applyCourierFrame(store, { type: "delta", couriers: [courier("a", { ts: 5_000, status: "stale", lat: 12.9 })] });
  assert.equal(getCourier(store, "a").status, "stale");
  assert.equal(store.dirty, true);
});

test("removal table: any order of removals leaves exactly the rest drawn", () => {
  const cases = [["a"], ["e"], ["c"], ["a", "e"], ["e", "a", "c"], ["a", "b", "c", "d", "e"], ["zz"], ["a", "a"]];
  for (const removed of cases) {
    const store = createStore();
    applyCourierFrame(store, { type: "snapshot", couriers: ["a", "b", "c", "d", "e"].map((id) => courier(id)) });
    applyCourierFrame(store, { type: "delta", couriers: [], removed });
    assertConsistent(store);
    for (const id of removed) assert.equal(getCourier(store, id), undefined);
    assert.equal(store.entries.size, 5 - new Set(removed.filter((id) => id !== "zz")).size);
  }
});

test("couriers without an id or finite coordinates are skipped", () => {
  const store = createStore();
  applyCourierFrame(store, {
    type: "snapshot",
    couriers: [courier("ok"), null, { id: 7, lat: 1, lon: 2 }, courier("nan", { lat: NaN }), courier("s", { lon: "77" })],
  });
  assert.deepEqual([...store.entries.keys()], ["ok"]);
});

test("non-courier frames are left to the caller", () => {
  const store = createStore();
  assert.equal(applyCourierFrame(store, { type: "stats", online: 1 }), false);
  assert.equal(applyCourierFrame(store, { type: "delta" }), true);
  assert.equal(store.dirty, false);
});

// How long this takes is measured by `make bench` (the page section), not here: a timed test fails on a
// loaded machine and says nothing about the code.
test("10,000-courier delta applies and regroups consistently", () => {
  const store = createStore();
  const ids = Array.from({ length: 10_000 }, (_, i) => `courier-${String(i).padStart(5, "0")}`);
  applyCourierFrame(store, { type: "snapshot", couriers: ids.map((id) => courier(id)) });
  const delta = { type: "delta", couriers: ids.map((id, i) => courier(id, { ts: 2_000, lat: 12.9 + i * 1e-5 })), removed: [] };
  applyCourierFrame(store, delta);
  const drawn = featureCollection(store).features.flatMap((feature) => feature.geometry.coordinates);
  assert.equal(drawn.length, 10_000); // every courier drawn once, in the groups the map draws
  assertConsistent(store);
});

test("latency is receive time minus server time, null without one", () => {
  assert.equal(frameLatencyMs({ server_time_ms: 1_000 }, 1_040), 40);
  assert.equal(frameLatencyMs({}, 1_040), null);
});

test("outgoing messages match the gateway contract", () => {
  assert.deepEqual(JSON.parse(viewportMessage([77.5, 12.9, 77.7, 13.1])), {
    type: "viewport",
    bbox: [77.5, 12.9, 77.7, 13.1],
  });
  assert.deepEqual(JSON.parse(viewportMessage(null)), { type: "viewport", bbox: null });
  assert.deepEqual(JSON.parse(followMessage("courier-0001")), { type: "follow", partner_id: "courier-0001" });
  assert.deepEqual(JSON.parse(followMessage(null)), { type: "follow", partner_id: null });
});

test("paddedBbox grows by the fraction and clamps to WGS84", () => {
  assert.deepEqual(paddedBbox([77.5, 12.9, 77.7, 13.1], 0.1), [77.48, 12.88, 77.72, 13.12]);
  assert.deepEqual(paddedBbox([-179.9, -89.9, 179.9, 89.9], 0.5), [-180, -90, 180, 90]);
});

test("backoff table: exponential, jittered in the upper half, capped at 10 s", () => {
  const rows = [
    // attempt, random, expected ms
    [0, 0, 250],
    [0, 1, 500],
    [1, 0.5, 750],
    [2, 0, 1000],
    [4, 1, 8000],
    [5, 0, 5000],
    [5, 1, 10000],
    [30, 1, 10000],
    [30, 0, 5000],
  ];
  for (const [attempt, random, expected] of rows) {
    assert.equal(backoffDelayMs(attempt, () => random), expected, `attempt ${attempt} random ${random}`);
  }
});
