// Rejected pings of the played-back courier, shown as ghosts on its way: pure.
//
// The review index lists them by when the validator rejected them (`rejected_at`); a stale ping is rejected
// long after it was recorded, so each ghost is placed in time by its own `ts` (from the entry's payload) when
// that falls in the window, and by `rejected_at` otherwise. Pings rejected up to `LATE_MS` after the window
// are asked for too, since they may have been recorded in it.

export const LATE_MS = 10 * 60 * 1000;
export const GHOSTS_MAX = 100;

/** The review API's list of a courier's rejected pings that may belong to [from, to]. */
export function ghostListUrl(partnerId, from, to) {
  const query = new URLSearchParams({
    partner: partnerId,
    since: String(Math.floor(from)),
    until: String(Math.floor(to + LATE_MS)),
    limit: String(GHOSTS_MAX),
  });
  return `api/dlq?${query}`;
}

/** A ping's `ts` (epoch ms, or ISO-8601 with an offset) as epoch ms, or null. */
export function pingTime(ts) {
  if (typeof ts === "number") return Number.isFinite(ts) ? ts : null;
  if (typeof ts === "string" && /[zZ]|[+-]\d\d:?\d\d$/.test(ts)) {
    const parsed = Date.parse(ts);
    return Number.isFinite(parsed) ? parsed : null;
  }
  return null;
}

/**
 * Ghosts for a window: `rows` from the review API's list, `details` the entry details fetched for them (by
 * id; missing ones fall back to `rejected_at`). Rows without coordinates are left out. Sorted by time.
 */
export function ghostsInWindow(rows, details, from, to) {
  const ghosts = [];
  for (const row of Array.isArray(rows) ? rows : []) {
    if (!row || !Number.isFinite(row.lat) || !Number.isFinite(row.lon)) continue;
    const detail = details.get(row.id);
    const doc = detail && detail.payload_json;
    const recorded = doc && typeof doc === "object" ? pingTime(doc.ts) : null;
    const at = recorded !== null && recorded >= from && recorded <= to ? recorded : row.rejected_at;
    if (!Number.isFinite(at) || at < from || at > to) continue;
    ghosts.push({ id: row.id, at, lat: row.lat, lon: row.lon, reason: String(row.reason) });
  }
  ghosts.sort((a, b) => a.at - b.at);
  return ghosts;
}

/** How many of the (sorted) ghosts are at or before `t`. */
export function ghostsPassed(ghosts, t) {
  let low = 0;
  let high = ghosts.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (ghosts[middle].at <= t) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The first `count` ghosts as GeoJSON points with their reason. */
export function ghostCollection(ghosts, count) {
  return {
    type: "FeatureCollection",
    features: ghosts.slice(0, count).map((ghost) => ({
      type: "Feature",
      properties: { id: ghost.id, reason: ghost.reason },
      geometry: { type: "Point", coordinates: [ghost.lon, ghost.lat] },
    })),
  };
}
