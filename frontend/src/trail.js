// The selected courier's trail: points [ts_ms, lat, lon], newest first (the order `/api/couriers/{id}` uses).
// The page fetches the stored trail once when a courier is selected and then extends it from live deltas;
// deltas that arrive while the fetch is in flight are kept and merged in when it lands.

import { fixReplaces } from "./protocol.js";

export const MAX_TRAIL_POINTS = 2000;

function isPoint(point) {
  return (
    Array.isArray(point) &&
    Number.isFinite(point[0]) &&
    Number.isFinite(point[1]) &&
    Number.isFinite(point[2])
  );
}

/** Extend `trail` with a courier update if it is newer (`fixReplaces`) than the newest point; returns the (same)
 * trail. */
export function extendTrail(trail, courier, maxPoints = MAX_TRAIL_POINTS) {
  if (!courier || !Number.isFinite(courier.ts)) return trail;
  if (!fixReplaces(trail.length > 0 ? trail[0][0] : null, courier.ts)) return trail;
  trail.unshift([courier.ts, courier.lat, courier.lon]);
  if (trail.length > maxPoints) trail.length = maxPoints;
  return trail;
}

/**
 * Merge the trail fetched from the API with the points collected live meanwhile: newest first, one point
 * per timestamp, malformed points dropped, at most `maxPoints`.
 */
export function mergeTrails(fetched, live, maxPoints = MAX_TRAIL_POINTS) {
  const byTs = new Map();
  for (const point of fetched) if (isPoint(point)) byTs.set(point[0], point);
  for (const point of live) if (isPoint(point)) byTs.set(point[0], point);
  const merged = [...byTs.values()].sort((a, b) => b[0] - a[0]);
  if (merged.length > maxPoints) merged.length = maxPoints;
  return merged;
}

/** The trail as a GeoJSON LineString feature collection (empty when under two points). */
export function trailGeoJSON(trail) {
  if (trail.length < 2) return { type: "FeatureCollection", features: [] };
  return {
    type: "FeatureCollection",
    features: [
      {
        type: "Feature",
        properties: {},
        geometry: { type: "LineString", coordinates: trail.map((point) => [point[2], point[1]]) },
      },
    ],
  };
}
