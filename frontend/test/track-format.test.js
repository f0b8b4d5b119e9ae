import { test } from "node:test";
import assert from "node:assert/strict";
import { ageText, cardModel, distanceText, etaText, fixAgeMs } from "../src/track/format.js";
import { applySnapshot, createTrack } from "../src/track/state.js";

test("the ETA is worded as an estimate in whole minutes", () => {
  assert.equal(etaText(null), null);
  assert.equal(etaText(Number.NaN), null);
  assert.equal(etaText(0), "less than a minute");
  assert.equal(etaText(59), "less than a minute");
  assert.equal(etaText(60), "about 1 min");
  assert.equal(etaText(359), "about 6 min");
  assert.equal(etaText(3599), "about 1 h"); // 59.98 min rounds to the hour
  assert.equal(etaText(3600), "about 1 h");
  assert.equal(etaText(4800), "about 1 h 20 min");
});

test("the ETA text never rises while the estimate falls", () => {
  const minutes = (text) => (text === "less than a minute" ? 0 : Number(text.match(/(\d+) min/)[1]));
  let previous = Infinity;
  for (let eta = 3500; eta >= 0; eta -= 7) {
    const value = minutes(etaText(eta));
    assert.ok(value <= previous, `${eta}`);
    previous = value;
  }
});

test("distances", () => {
  assert.equal(distanceText(null), null);
  assert.equal(distanceText(0), "0 m");
  assert.equal(distanceText(348), "350 m");
  assert.equal(distanceText(994), "990 m");
  assert.equal(distanceText(996), "1.0 km");
  assert.equal(distanceText(1234), "1.2 km");
  assert.equal(distanceText(12_345), "12 km");
});

test("the fix's age uses the gateway's clock and the time since receipt, not the phone's clock", () => {
  const courier = { ts: 1_000_000, serverTs: 1_002_000 };
  // The phone's clock is an hour off: the age is still 2 s at receipt, 7 s five seconds later.
  const receivedAt = 1_000_000 + 3_600_000;
  assert.equal(fixAgeMs(courier, receivedAt, receivedAt), 2000);
  assert.equal(fixAgeMs(courier, receivedAt, receivedAt + 5000), 7000);
  assert.equal(fixAgeMs({ ts: 1000, serverTs: null }, null, 4000), 3000);
  assert.equal(ageText(1000), "just now");
  assert.equal(ageText(12_500), "12 s ago");
  assert.equal(ageText(185_000), "3 min ago");
  assert.equal(ageText(4_000_000), "over an hour ago");
});

test("the card: to the restaurant before pickup, to you after, nothing of the courier once delivered", () => {
  const track = createTrack();
  assert.equal(cardModel(track, 0).headline, "Loading your order…");
  const order = { state: "to_pickup", pickup: { lat: 1, lon: 1 }, dropoff: { lat: 1.01, lon: 1 }, expires_at: 9 };
  const courier = { lat: 1, lon: 1.001, ts: 1000, distance_m: 1500, eta_s: 300, coarse: true, server_ts: 1000 };
  applySnapshot(track, { order, courier }, 50_000);
  let card = cardModel(track, 50_000);
  assert.equal(card.headline, "On the way to the restaurant");
  assert.equal(card.eta, "about 5 min");
  assert.equal(card.etaTarget, "to the restaurant");
  assert.equal(card.distance, "1.5 km to the restaurant");
  assert.equal(card.age, "updated just now");
  assert.equal(card.coarse, true);

  applySnapshot(track, { order: { ...order, state: "arriving" }, courier: { ...courier, ts: 2000, coarse: false, eta_s: 40, distance_m: 300 } }, 60_000);
  card = cardModel(track, 72_000);
  assert.equal(card.headline, "Arriving");
  assert.equal(card.eta, "less than a minute");
  assert.equal(card.distance, "300 m to you");
  assert.equal(card.age, "updated 12 s ago");
  assert.equal(card.coarse, false);

  applySnapshot(track, { order: { ...order, state: "delivered" }, courier: null }, 70_000);
  card = cardModel(track, 80_000);
  assert.equal(card.headline, "Delivered");
  assert.match(card.detail, /no longer shown/);
  assert.equal(card.eta, null);
  assert.equal(card.distance, null);
  assert.equal(card.age, null);
});
