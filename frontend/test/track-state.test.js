import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ORDER_STATES,
  STATE_LABELS,
  applyCourier,
  applyFrame,
  applyOrder,
  applySnapshot,
  createTrack,
  parseCourier,
  stateAdvances,
} from "../src/track/state.js";

const DROPOFF = { lat: 12.97, lon: 77.59 };
const PICKUP = { lat: 12.95, lon: 77.6 };

function order(state, extra = {}) {
  return { order_id: "o-1", state, pickup: PICKUP, dropoff: DROPOFF, expires_at: 1_900_000_000_000, ...extra };
}

function courier(ts, extra = {}) {
  return { lat: 12.96, lon: 77.595, ts, speed: 5, heading: 0, coarse: false, distance_m: 1200, eta_s: 240, server_ts: ts + 100, ...extra };
}

test("the four states, their labels and their only order", () => {
  assert.deepEqual(ORDER_STATES, ["to_pickup", "picked_up", "arriving", "delivered"]);
  assert.equal(STATE_LABELS.to_pickup, "On the way to the restaurant");
  assert.equal(STATE_LABELS.picked_up, "Picked up");
  assert.equal(STATE_LABELS.arriving, "Arriving");
  assert.equal(STATE_LABELS.delivered, "Delivered");
  assert.ok(stateAdvances(null, "to_pickup"));
  assert.ok(stateAdvances("to_pickup", "arriving")); // a state may be skipped (a fast courier)
  assert.ok(!stateAdvances("arriving", "picked_up")); // never back
  assert.ok(!stateAdvances("picked_up", "picked_up"));
  assert.ok(!stateAdvances("picked_up", "lost")); // not a state
});

test("a snapshot gives the order and its courier; frames then move them forward only", () => {
  const track = createTrack();
  assert.deepEqual(applySnapshot(track, { order: order("to_pickup"), courier: courier(1000) }, 5), {
    order: true,
    courier: true,
  });
  assert.equal(track.order.state, "to_pickup");
  assert.deepEqual(track.order.pickup, PICKUP);
  assert.equal(track.courier.etaS, 240);
  assert.equal(track.courier.distanceM, 1200);
  assert.equal(track.receivedAtMs, 5);

  assert.deepEqual(applyFrame(track, { type: "order", ...order("picked_up") }, 6), { order: true, courier: false });
  assert.equal(track.order.state, "picked_up");
  // A frame from before a reconnect cannot undo the pickup.
  assert.deepEqual(applyFrame(track, { type: "order", ...order("to_pickup") }, 7), { order: false, courier: false });
  assert.equal(track.order.state, "picked_up");
});

test("newer wins by fix time: a late or repeated courier frame never moves the marker back", () => {
  const track = createTrack();
  applyOrder(track, order("picked_up"));
  assert.ok(applyCourier(track, courier(2000, { lat: 12.961 }), 10));
  assert.ok(!applyCourier(track, courier(1000, { lat: 12.9 }), 11));
  assert.ok(!applyCourier(track, courier(2000, { lat: 12.9 }), 12));
  assert.equal(track.courier.lat, 12.961);
  assert.equal(track.receivedAtMs, 10);
  assert.deepEqual(applyFrame(track, { type: "courier", ...courier(3000) }, 13), { order: false, courier: true });
  assert.equal(track.courier.ts, 3000);
});

test("delivered drops the courier and no later frame can bring a position back", () => {
  const track = createTrack();
  applySnapshot(track, { order: order("arriving"), courier: courier(1000) }, 1);
  assert.deepEqual(applyFrame(track, { type: "order", ...order("delivered") }, 2), { order: true, courier: true });
  assert.equal(track.order.state, "delivered");
  assert.equal(track.courier, null);
  assert.deepEqual(applyFrame(track, { type: "courier", ...courier(5000) }, 3), { order: false, courier: false });
  assert.equal(track.courier, null);

  // A snapshot of a delivered order carrying a courier anyway: still none.
  const late = createTrack();
  applySnapshot(late, { order: order("delivered"), courier: courier(1000) }, 1);
  assert.equal(late.courier, null);
});

test("frames that are not the contract's are ignored whole", () => {
  const track = createTrack();
  applyOrder(track, order("picked_up", { pickup: null }));
  assert.equal(track.order.pickup, null);
  for (const frame of [
    null,
    "order",
    { type: "order", state: "teleported", dropoff: DROPOFF },
    { type: "order", state: "arriving" }, // no drop-off
    { type: "courier", lat: "12.9", lon: 77.5, ts: 9 },
    { type: "courier", lat: 91, lon: 77.5, ts: 9 },
    { type: "courier", lat: 12.9, lon: 77.5 }, // no time
    { type: "stats", couriers: 3 },
  ]) {
    assert.deepEqual(applyFrame(track, frame, 1), { order: false, courier: false }, JSON.stringify(frame));
  }
  assert.equal(track.order.state, "picked_up");
  assert.equal(track.courier, null);
});

test("courier fields the page does not need to trust: null ETA, coarse flag", () => {
  assert.equal(parseCourier(courier(1, { eta_s: null })).etaS, null);
  assert.equal(parseCourier(courier(1, { eta_s: -5 })).etaS, null);
  assert.equal(parseCourier(courier(1, { coarse: "yes" })).coarse, false);
  assert.equal(parseCourier(courier(1, { coarse: true })).coarse, true);
  assert.equal(parseCourier(courier(1, { speed: null })).speed, null);
});

test("after pickup, the distance and ETA to the pickup point are not shown as the drop-off's", () => {
  const track = createTrack();
  applySnapshot(track, { order: order("to_pickup"), courier: courier(1000, { coarse: true }) }, 1);
  assert.deepEqual(applyFrame(track, { type: "order", ...order("picked_up") }, 2), { order: true, courier: false });
  assert.equal(track.courier.distanceM, null);
  assert.equal(track.courier.etaS, null);
  assert.equal(track.courier.lat, 12.96); // the marker stays until the next fix
  applyFrame(track, { type: "courier", ...courier(2000) }, 3);
  assert.equal(track.courier.distanceM, 1200);
  assert.equal(track.courier.coarse, false);
});
