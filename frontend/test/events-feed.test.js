import { test } from "node:test";
import assert from "node:assert/strict";
import {
  EVENTS_PATH,
  FEED_SIZE,
  createEventsFeed,
  describeEvent,
  isEvent,
  mergeEvents,
} from "../src/events-feed.js";

function event(id, ts, type = "zone_enter", extra = {}) {
  return { id, type, partner_id: "courier-1", ts, zone: "Koramangala", lat: 12.93, lon: 77.62, from: null, to: null, ...extra };
}

test("mergeEvents: newest first by event time, each id once, capped", () => {
  let feed = mergeEvents([], [event("a", 1_000), event("b", 3_000), event("c", 2_000)]);
  assert.deepEqual(feed.map((e) => e.id), ["b", "c", "a"]);
  // A late event (a stale status decided after newer zone events) lands in its place by event time.
  feed = mergeEvents(feed, [event("b", 3_000), event("late", 1_500, "status_change")]);
  assert.deepEqual(feed.map((e) => e.id), ["b", "c", "late", "a"]);
  const many = Array.from({ length: FEED_SIZE + 10 }, (_, i) => event(`e${i}`, 10_000 + i));
  feed = mergeEvents(feed, many);
  assert.equal(feed.length, FEED_SIZE);
  assert.equal(feed[0].id, `e${FEED_SIZE + 9}`);
});

test("mergeEvents returns the same array when a poll brings nothing new (no redraw)", () => {
  const feed = mergeEvents([], [event("a", 1_000)]);
  assert.equal(mergeEvents(feed, [event("a", 1_000)]), feed);
  assert.equal(mergeEvents(feed, []), feed);
  assert.equal(mergeEvents(feed, { error: "x" }), feed);
  // Older than everything held in a full feed: nothing to show.
  const full = mergeEvents([], Array.from({ length: FEED_SIZE }, (_, i) => event(`e${i}`, 10_000 + i)));
  assert.equal(mergeEvents(full, [event("old", 1)]), full);
});

test("events of one fix read newest first: entered, then left, then the status change; ties by id never flicker", () => {
  const fix = [event("a-status", 5_000, "status_change"), event("b-exit", 5_000, "zone_exit"), event("c-enter", 5_000)];
  assert.deepEqual(mergeEvents([], fix).map((e) => e.id), ["c-enter", "b-exit", "a-status"]);
  assert.deepEqual(mergeEvents([], [...fix].reverse()).map((e) => e.id), ["c-enter", "b-exit", "a-status"]);
  const one = mergeEvents([], [event("x1", 5_000), event("x2", 5_000)]);
  const other = mergeEvents([], [event("x2", 5_000), event("x1", 5_000)]);
  assert.deepEqual(one.map((e) => e.id), other.map((e) => e.id));
});

test("what the server sends that is not an event is skipped", () => {
  for (const bad of [null, 1, "x", {}, event(7, 1), event("a", "1"), event("a", 1, "teleport"), event("a", 1, "zone_enter", { lat: null })]) {
    assert.equal(isEvent(bad), false, JSON.stringify(bad));
  }
  assert.deepEqual(mergeEvents([], [null, event("ok", 1)]).map((e) => e.id), ["ok"]);
});

test("describeEvent", () => {
  assert.deepEqual(describeEvent(event("a", 1)), { kind: "Entered", what: "Koramangala" });
  assert.deepEqual(describeEvent(event("a", 1, "zone_exit", { zone: "HSR Layout" })), { kind: "Left", what: "HSR Layout" });
  assert.deepEqual(describeEvent(event("a", 1, "status_change", { zone: null, from: "online", to: "stale" })), {
    kind: "Status",
    what: "online → stale",
  });
  assert.ok(describeEvent(event("a", 1, "zone_enter", { zone: "z".repeat(500) })).what.length <= 80);
});

test("an order's steps are shown, naming the order", () => {
  const step = (id, type) => event(id, 7_000, type, { zone: null, from: "arriving", to: "delivered", order_id: "o-17" });
  assert.deepEqual(describeEvent(step("d", "order_delivered")), { kind: "Delivered", what: "order o-17" });
  assert.deepEqual(describeEvent(step("p", "order_picked_up")), { kind: "Picked up", what: "order o-17" });
  assert.deepEqual(describeEvent(step("a", "order_arriving")), { kind: "Arriving", what: "order o-17" });
  // In the feed, after the courier's own events of the same fix, and in a fixed order between polls.
  const fix = [step("d", "order_delivered"), event("s", 7_000, "status_change"), event("e", 7_000)];
  assert.deepEqual(mergeEvents([], fix).map((e) => e.id), ["e", "s", "d"]);
});

test("the feed polls the newest events, reports only changes, and says when the server refuses", async () => {
  const answers = [
    { ok: true, status: 200, body: [event("a", 1_000)] },
    { ok: true, status: 200, body: [event("a", 1_000)] },
    { ok: false, status: 503, body: null },
    { ok: true, status: 200, body: [event("b", 2_000), event("a", 1_000)] },
  ];
  const paths = [];
  const seen = [];
  const statuses = [];
  const feed = createEventsFeed({
    fetchJson: async (path) => {
      paths.push(path);
      return answers.shift();
    },
    onEvents: (events) => seen.push(events.map((e) => e.id)),
    onStatus: (text) => statuses.push(text),
    doc: null,
  });
  for (let i = 0; i < 4; i += 1) await feed.poll();
  assert.deepEqual(paths, Array(4).fill(EVENTS_PATH));
  assert.deepEqual(seen, [["a"], ["b", "a"]]);
  assert.deepEqual(statuses, ["", "", "events unavailable, retrying", ""]);
});

test("a refused token stops the polling until the feed is started again", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const statuses = [];
  let asked = 0;
  let answer = { ok: false, status: 401, body: null };
  const feed = createEventsFeed({
    fetchJson: async () => {
      asked += 1;
      return answer;
    },
    onEvents: () => {},
    onStatus: (text) => statuses.push(text),
    intervalMs: 1_000,
    doc: null,
  });
  feed.start();
  await Promise.resolve();
  for (let i = 0; i < 5; i += 1) {
    t.mock.timers.tick(1_000);
    await Promise.resolve();
  }
  assert.equal(asked, 1);
  assert.deepEqual(statuses, ["viewer token needed"]);
  answer = { ok: true, status: 200, body: [event("a", 1)] };
  feed.start(); // the page has a good token now
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(asked, 2);
  feed.start(); // every snapshot says so again: running already, nothing more
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(asked, 2);
  t.mock.timers.tick(1_000);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(asked, 3);
  assert.equal(statuses.at(-1), "");
});
