// Newer wins by event time on the map page: the cases shared with the gateway's hub and the Redis script
// (tests/data/newer_wins.json) against the page's rule, its courier store and the selected courier's trail.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { applyCourierFrame, createStore, fixReplaces, getCourier } from "../src/protocol.js";
import { extendTrail } from "../src/trail.js";

const { cases } = JSON.parse(readFileSync(new URL("../../tests/data/newer_wins.json", import.meta.url), "utf8"));
const HELD_LAT = 12.9;
const INCOMING_LAT = 12.95;

function courier(ts, lat, status = "online") {
  return { id: "a", lat, lon: 77.59, ts, speed: 5, heading: 90, vehicle: "bike", status, order_id: null };
}

const name = ({ held, incoming, expect }) => `${held} <- ${incoming}: ${expect}`;

test("the cases cover nothing held, newer, equal and older", () => {
  const seen = new Set(cases.map(({ held, incoming }) => (held === null ? "none" : Math.sign(incoming - held))));
  assert.deepEqual([...seen].sort(), [-1, 0, 1, "none"].sort());
});

for (const entry of cases) {
  const replaced = entry.expect === "replace";

  test(`the rule: ${name(entry)}`, () => {
    assert.equal(fixReplaces(entry.held, entry.incoming), replaced);
  });

  test(`the courier store: ${name(entry)}`, () => {
    const store = createStore();
    const held = entry.held === null ? [] : [courier(entry.held, HELD_LAT)];
    applyCourierFrame(store, { type: "snapshot", couriers: held });
    store.dirty = false;
    applyCourierFrame(store, { type: "delta", couriers: [courier(entry.incoming, INCOMING_LAT)], removed: [] });
    assert.equal(getCourier(store, "a").lat, replaced ? INCOMING_LAT : HELD_LAT);
    assert.equal(getCourier(store, "a").ts, replaced ? entry.incoming : entry.held);
    assert.equal(store.entries.get("a").coordinates[1], replaced ? INCOMING_LAT : HELD_LAT);
    assert.equal(store.dirty, replaced, "a kept fix with the same status changes nothing");
  });

  test(`the selected courier's trail: ${name(entry)}`, () => {
    const trail = entry.held === null ? [] : [[entry.held, HELD_LAT, 77.59]];
    extendTrail(trail, courier(entry.incoming, INCOMING_LAT));
    assert.deepEqual(trail[0], replaced ? [entry.incoming, INCOMING_LAT, 77.59] : [entry.held, HELD_LAT, 77.59]);
  });
}

test("an equal ts keeps the held fix but takes the gateway's new status", () => {
  const store = createStore();
  applyCourierFrame(store, { type: "snapshot", couriers: [courier(5_000, HELD_LAT)] });
  store.dirty = false;
  applyCourierFrame(store, { type: "delta", couriers: [courier(5_000, INCOMING_LAT, "stale")], removed: [] });
  assert.equal(getCourier(store, "a").lat, HELD_LAT);
  assert.equal(getCourier(store, "a").status, "stale");
  assert.equal(store.entries.get("a").properties.status, "stale");
  assert.equal(store.dirty, true);
});
