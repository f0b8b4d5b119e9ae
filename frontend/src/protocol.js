// Wire protocol and courier state of the live map page: pure functions, no DOM, no map.
//
// The gateway sends a `snapshot` on connect (replace everything), then a `delta` every tick (latest-wins
// upserts plus `removed` ids that left the viewport) and `stats` about once a second. The store keeps one
// entry per courier: the courier as received, its [lon, lat] pair (mutated in place) and the shared
// properties object of its (status, vehicle) class. A delta touches only the entries it names.
//
// Why the map gets one MultiPoint per class instead of one Point feature per courier: every setData makes
// MapLibre walk the whole collection in JavaScript (its worker `serialize`) and then structured-clone it to
// its worker, on the main thread, right after setData returns. Measured in headless Chromium for 10,000
// couriers, that hidden copy cost ~21 ms per frame with Point features, several times our own merge. Grouped,
// it is an array of coordinate pairs per class: the walk and the clone both get many times cheaper. Nothing
// on the map needs per-courier features: clicks are resolved against this store (`couriersInBox`), and the
// selected courier has its own source.


/** Parse one WebSocket text frame; throws a descriptive Error on anything that is not a typed JSON object. */
export function parseFrame(text) {
  const frame = JSON.parse(text);
  if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
    throw new Error(`frame is not a JSON object: ${String(text).slice(0, 80)}`);
  }
  if (typeof frame.type !== "string") {
    throw new Error(`frame has no string "type": ${String(text).slice(0, 80)}`);
  }
  return frame;
}

export function createStore() {
  return {
    /** partner_id -> { courier, coordinates: [lon, lat], properties: shared class object } */
    entries: new Map(),
    /** True when the map has not yet been given the current positions. */
    dirty: false,
  };
}

const sharedProperties = new Map();
const MAX_SHARED_PROPERTIES = 256; // statuses x vehicles is 16; a server sending junk must not grow this

/** The one frozen properties object of a (status, vehicle) class. */
export function classProperties(status, vehicle) {
  const key = `${status}\u0000${vehicle}`;
  let properties = sharedProperties.get(key);
  if (properties === undefined) {
    if (sharedProperties.size >= MAX_SHARED_PROPERTIES) return classProperties(null, null);
    properties = Object.freeze({ status: status ?? null, vehicle: vehicle ?? null });
    sharedProperties.set(key, properties);
  }
  return properties;
}

function isUsableCourier(courier) {
  return (
    courier !== null &&
    typeof courier === "object" &&
    typeof courier.id === "string" &&
    Number.isFinite(courier.lat) &&
    Number.isFinite(courier.lon)
  );
}

/**
 * Newer wins by event time, the rule Redis and the gateway's hub follow too (tracker/models.py
 * `newer_wins`): an incoming fix replaces the held one only when its `ts` is strictly greater; an older or an
 * equal one keeps the held fix. Nothing held: any fix is taken. Cases: tests/data/newer_wins.json.
 */
export function fixReplaces(heldTs, incomingTs) {
  return heldTs === undefined || heldTs === null || incomingTs > heldTs;
}

/**
 * Insert or update one courier, newer wins by fix time (`fixReplaces`): a late frame can never move a marker
 * backwards. A courier with the held `ts` keeps the held fix but brings its status: the gateway re-sends a
 * courier whose status changed with the clock (online -> stale) under the same fix. Returns true when the
 * store changed.
 */
export function upsertCourier(store, courier) {
  if (!isUsableCourier(courier)) return false;
  const entry = store.entries.get(courier.id);
  if (entry === undefined) {
    store.entries.set(courier.id, {
      courier,
      coordinates: [courier.lon, courier.lat],
      properties: classProperties(courier.status, courier.vehicle),
    });
    return true;
  }
  const held = entry.courier;
  if (!fixReplaces(held.ts, courier.ts)) {
    if (courier.ts !== held.ts || courier.status === held.status) return false;
    courier = { ...held, status: courier.status };
  }
  entry.courier = courier;
  entry.coordinates[0] = courier.lon;
  entry.coordinates[1] = courier.lat;
  entry.properties = classProperties(courier.status, courier.vehicle);
  return true;
}

export function removeCourier(store, partnerId) {
  return store.entries.delete(partnerId);
}

export function replaceAll(store, couriers) {
  store.entries.clear();
  for (const courier of couriers) upsertCourier(store, courier);
  store.dirty = true;
}

/**
 * Apply a courier-carrying frame (`snapshot` or `delta`) to the store. Returns true when the frame was one
 * of those two types (whether or not anything changed); other frame types are left to the caller.
 */
export function applyCourierFrame(store, frame) {
  if (frame.type === "snapshot") {
    replaceAll(store, Array.isArray(frame.couriers) ? frame.couriers : []);
    return true;
  }
  if (frame.type !== "delta") return false;
  let changed = false;
  if (Array.isArray(frame.couriers)) {
    for (const courier of frame.couriers) {
      if (upsertCourier(store, courier)) changed = true;
    }
  }
  if (Array.isArray(frame.removed)) {
    for (const partnerId of frame.removed) {
      if (removeCourier(store, partnerId)) changed = true;
    }
  }
  if (changed) store.dirty = true;
  return true;
}

// Draw order: a class later in the collection is drawn on top, so live couriers are never hidden under
// offline ones.
const STATUS_DRAW_RANK = { offline: 0, stale: 1, idle: 2, online: 3 };

/**
 * The map source's data: one MultiPoint feature per (status, vehicle) class. The coordinate pairs are the
 * entries' own arrays (no copy); only the per-class lists are rebuilt, which for 10,000 couriers is a few
 * hundred microseconds.
 */
export function featureCollection(store) {
  const byClass = new Map();
  for (const entry of store.entries.values()) {
    const points = byClass.get(entry.properties);
    if (points === undefined) byClass.set(entry.properties, [entry.coordinates]);
    else points.push(entry.coordinates);
  }
  const features = [];
  for (const [properties, coordinates] of byClass) {
    features.push({ type: "Feature", properties, geometry: { type: "MultiPoint", coordinates } });
  }
  features.sort(
    (a, b) => (STATUS_DRAW_RANK[a.properties.status] ?? -1) - (STATUS_DRAW_RANK[b.properties.status] ?? -1),
  );
  return { type: "FeatureCollection", features };
}

/** Partner ids of the couriers inside a lon/lat box (for hit-testing a click against the store). */
export function couriersInBox(store, west, south, east, north) {
  const found = [];
  for (const [partnerId, entry] of store.entries) {
    const [lon, lat] = entry.coordinates;
    if (lon >= west && lon <= east && lat >= south && lat <= north) found.push(partnerId);
  }
  return found;
}

export function getCourier(store, partnerId) {
  const entry = store.entries.get(partnerId);
  return entry === undefined ? undefined : entry.courier;
}

/** Client receive time minus the server's send time; null when the frame carries no server time. */
export function frameLatencyMs(frame, receivedAtMs) {
  return Number.isFinite(frame.server_time_ms) ? receivedAtMs - frame.server_time_ms : null;
}

// --- client -> server messages -------------------------------------------------------------------------

/** `bbox` is [west, south, east, north] or null for "everything". */
export function viewportMessage(bbox) {
  return JSON.stringify({ type: "viewport", bbox });
}

export function followMessage(partnerId) {
  return JSON.stringify({ type: "follow", partner_id: partnerId });
}

export function pingMessage() {
  return JSON.stringify({ type: "ping" });
}

/**
 * The bbox to ask for: the visible bounds grown by `padFraction` of their size on every side (so a short pan
 * shows couriers at once instead of after a round trip), clamped to valid WGS84 degrees and rounded to ~1 m.
 */
export function paddedBbox([west, south, east, north], padFraction = 0.1) {
  const padLon = (east - west) * padFraction;
  const padLat = (north - south) * padFraction;
  const round = (value) => Math.round(value * 1e5) / 1e5;
  return [
    round(Math.max(-180, west - padLon)),
    round(Math.max(-90, south - padLat)),
    round(Math.min(180, east + padLon)),
    round(Math.min(90, north + padLat)),
  ];
}

/**
 * Reconnect delay for the given failed attempt (0-based): exponential from `baseMs`, capped at `capMs`,
 * with "equal jitter" (a uniform draw in the upper half) so that thousands of pages dropped by one gateway
 * restart do not all come back in the same millisecond.
 */
export function backoffDelayMs(attempt, random = Math.random, baseMs = 500, capMs = 10_000) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
