// What the tracking page knows about its one order, and how frames change it: pure functions over a plain
// object (no DOM, no map), so node tests check every rule (frontend/test/track-state.test.js).
//
// The gateway's contract (GET /api/track/<token>, WebSocket /ws/track/<token>): an `order` object whose state
// only moves forward (to_pickup -> picked_up -> arriving -> delivered) and, until delivered, a `courier` object
// (the fix, its distance and an ETA the gateway computed). The page keeps to the same rules whatever arrives:
//
// - a state never goes back (a frame from before a reconnect cannot undo "picked up");
// - newer wins by fix time: a late courier frame never moves the marker backwards;
// - once delivered, there is no courier: it is dropped, and every later courier frame is ignored, so the
//   page cannot show a position after delivery even if one were sent;
// - a frame that is not what the contract says is ignored whole, never half-applied;
// - past pickup, a distance and ETA measured to the pickup point are no longer shown (until the next fix).

/** The order's states, in the only order they may come in. */
export const ORDER_STATES = Object.freeze(["to_pickup", "picked_up", "arriving", "delivered"]);

/** The headline the customer reads for each state. */
export const STATE_LABELS = Object.freeze({
  to_pickup: "On the way to the restaurant",
  picked_up: "Picked up",
  arriving: "Arriving",
  delivered: "Delivered",
});

/** One line under the headline. */
export const STATE_DETAILS = Object.freeze({
  to_pickup: "Your courier is collecting your order.",
  picked_up: "Your order is on its way to you.",
  arriving: "Your courier is nearly there.",
  delivered: "Your order has been delivered. The courier's location is no longer shown.",
});

export function stateRank(state) {
  return ORDER_STATES.indexOf(state);
}

/** Whether `incoming` may replace `held` (forward only; anything not a state never does). */
export function stateAdvances(held, incoming) {
  const next = stateRank(incoming);
  if (next < 0) return false;
  return held === null || held === undefined || next > stateRank(held);
}

function isPoint(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    Number.isFinite(value.lat) &&
    Number.isFinite(value.lon) &&
    Math.abs(value.lat) <= 90 &&
    Math.abs(value.lon) <= 180
  );
}

const finiteOrNull = (value) => (Number.isFinite(value) ? value : null);

/** The order object of the contract, checked and copied, or null when it is not one. */
export function parseOrder(raw) {
  if (raw === null || typeof raw !== "object" || stateRank(raw.state) < 0 || !isPoint(raw.dropoff)) return null;
  return {
    state: raw.state,
    dropoff: { lat: raw.dropoff.lat, lon: raw.dropoff.lon },
    pickup: isPoint(raw.pickup) ? { lat: raw.pickup.lat, lon: raw.pickup.lon } : null,
    expiresAt: finiteOrNull(raw.expires_at),
  };
}

/** The courier object of the contract, checked and copied, or null when it is not one. */
export function parseCourier(raw) {
  if (raw === null || typeof raw !== "object" || !isPoint(raw) || !Number.isFinite(raw.ts)) return null;
  return {
    lat: raw.lat,
    lon: raw.lon,
    ts: raw.ts,
    speed: finiteOrNull(raw.speed),
    heading: finiteOrNull(raw.heading),
    coarse: raw.coarse === true,
    distanceM: finiteOrNull(raw.distance_m),
    etaS: Number.isFinite(raw.eta_s) && raw.eta_s >= 0 ? raw.eta_s : null,
    serverTs: finiteOrNull(raw.server_ts),
  };
}

/** A page's tracking state before anything arrived. */
export function createTrack() {
  return {
    /** parseOrder's object, or null until the first answer. */
    order: null,
    /** parseCourier's object, or null (not known yet, or delivered). */
    courier: null,
    /** Local clock (Date.now()) when the courier was received: its age is measured from there. */
    receivedAtMs: null,
  };
}

export function delivered(track) {
  return track.order !== null && track.order.state === "delivered";
}

/** Take an order object; returns whether anything the page shows changed. */
export function applyOrder(track, raw) {
  const order = parseOrder(raw);
  if (order === null) return false;
  if (track.order === null) {
    track.order = order;
  } else if (stateAdvances(track.order.state, order.state)) {
    const wasToPickup = track.order.state === "to_pickup";
    track.order = { ...track.order, state: order.state, pickup: order.pickup ?? track.order.pickup };
    // The held courier's distance and ETA were to the pickup point: not to be shown as the drop-off's
    // until the next courier frame brings them.
    if (wasToPickup && track.courier !== null) track.courier = { ...track.courier, distanceM: null, etaS: null };
  } else {
    return false;
  }
  if (delivered(track)) {
    track.courier = null;
    track.receivedAtMs = null;
  }
  return true;
}

/** Take a courier object received at `receivedAtMs`; returns whether it replaced the one held. */
export function applyCourier(track, raw, receivedAtMs) {
  if (delivered(track)) return false;
  const courier = parseCourier(raw);
  if (courier === null) return false;
  if (track.courier !== null && !(courier.ts > track.courier.ts)) return false;
  track.courier = courier;
  track.receivedAtMs = receivedAtMs;
  return true;
}

/**
 * Apply one WebSocket frame (already parsed JSON); returns { order, courier }: which of the two changed.
 * Unknown frame types are ignored (a newer gateway may send more).
 */
export function applyFrame(track, frame, receivedAtMs) {
  const changed = { order: false, courier: false };
  if (frame === null || typeof frame !== "object") return changed;
  if (frame.type === "order") {
    const hadCourier = track.courier !== null;
    changed.order = applyOrder(track, frame);
    changed.courier = hadCourier && track.courier === null;
  } else if (frame.type === "courier") {
    changed.courier = applyCourier(track, frame, receivedAtMs);
  }
  return changed;
}

/** Apply the body of GET /api/track/<token> ({order, courier, ...}); returns { order, courier } as applyFrame. */
export function applySnapshot(track, body, receivedAtMs) {
  const changed = { order: false, courier: false };
  if (body === null || typeof body !== "object") return changed;
  changed.order = applyOrder(track, body.order);
  changed.courier = applyCourier(track, body.courier, receivedAtMs);
  return changed;
}
