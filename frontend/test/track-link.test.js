import { test } from "node:test";
import assert from "node:assert/strict";
import { trackLink } from "../src/track/link.js";
import { boundsOf, inside, needsFit, pointsToFit } from "../src/track/view.js";

test("the token and the two endpoints come from the page's own URL", () => {
  assert.deepEqual(trackLink("http://127.0.0.1:8000/track/eyJv.c2ln"), {
    token: "eyJv.c2ln",
    apiUrl: "http://127.0.0.1:8000/api/track/eyJv.c2ln",
    wsUrl: "ws://127.0.0.1:8000/ws/track/eyJv.c2ln",
    rootUrl: "http://127.0.0.1:8000/",
  });
  // https -> wss, a path prefix kept, a trailing slash and a fragment ignored
  const behind = trackLink("https://shop.example/tracker/track/abc.def/#map");
  assert.equal(behind.apiUrl, "https://shop.example/tracker/api/track/abc.def");
  assert.equal(behind.wsUrl, "wss://shop.example/tracker/ws/track/abc.def");
  assert.equal(behind.rootUrl, "https://shop.example/tracker/");
  assert.equal(trackLink("http://x/track/"), null);
  assert.equal(trackLink("http://x/"), null);
  assert.equal(trackLink("http://x/track/a/b"), null);
});

const track = (state, pickup = { lat: 1, lon: 2 }) => ({
  order: { state, pickup, dropoff: { lat: 1.02, lon: 2.02 } },
});

test("the map frames the courier, the drop-off and, before pickup, the pickup point", () => {
  assert.deepEqual(pointsToFit(track("to_pickup"), [2.01, 1.01]), [
    [2.02, 1.02],
    [2, 1],
    [2.01, 1.01],
  ]);
  assert.deepEqual(pointsToFit(track("picked_up"), [2.01, 1.01]), [
    [2.02, 1.02],
    [2.01, 1.01],
  ]);
  assert.deepEqual(pointsToFit(track("delivered"), [2.01, 1.01]), [[2.02, 1.02]]);
  assert.deepEqual(pointsToFit({ order: null }, null), []);
  assert.deepEqual(boundsOf([[2.02, 1.02], [2, 1.05]]), [
    [2, 1.02],
    [2.02, 1.05],
  ]);
});

test("refit only when never fitted, the state moved on, or a point left the view", () => {
  const t = track("picked_up");
  const points = pointsToFit(t, [2.01, 1.01]);
  const view = [
    [1.9, 0.9],
    [2.1, 1.1],
  ];
  assert.ok(needsFit(null, t, points, null));
  assert.ok(!needsFit("picked_up", t, points, view));
  assert.ok(needsFit("to_pickup", t, points, view));
  assert.ok(needsFit("picked_up", t, [[2.3, 1.0]], view));
  assert.ok(!inside(view, [2.099, 1.0])); // in the edge margin counts as leaving
  // A customer who moved the map lately is left alone, unless the order moved on.
  assert.ok(!needsFit("picked_up", t, [[2.3, 1.0]], view, 5_000));
  assert.ok(needsFit("picked_up", t, [[2.3, 1.0]], view, 25_000));
  assert.ok(needsFit("to_pickup", t, points, view, 5_000));
});
