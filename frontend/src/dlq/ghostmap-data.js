// Ghost-map data as plain GeoJSON and layer definitions (no MapLibre import, so node tests can check them).

import { reasonColourExpression } from "./reasons.js";

export const EMPTY = { type: "FeatureCollection", features: [] };
export const SOURCES = Object.freeze({ ghosts: "dlq-ghosts", jump: "dlq-jump", picked: "dlq-picked" });
export const GHOST_LAYER_ID = "dlq-ghosts";

/** Ghost features (plain data) for the entries that have finite coordinates. */
export function ghostFeatures(items) {
  const features = [];
  for (const entry of items) {
    if (!Number.isFinite(entry.lat) || !Number.isFinite(entry.lon)) continue;
    if (Math.abs(entry.lat) > 90 || Math.abs(entry.lon) > 180) continue;
    features.push({
      type: "Feature",
      properties: { id: entry.id, reason: entry.reason, status: entry.status },
      geometry: { type: "Point", coordinates: [entry.lon, entry.lat] },
    });
  }
  return { type: "FeatureCollection", features };
}

/** The jump line and its two endpoints as GeoJSON, or the empty collection. */
export function jumpFeatures(jump) {
  if (jump === null) return EMPTY;
  return {
    type: "FeatureCollection",
    features: [
      { type: "Feature", properties: { part: "line" }, geometry: { type: "LineString", coordinates: [jump.from, jump.to] } },
      { type: "Feature", properties: { part: "from" }, geometry: { type: "Point", coordinates: jump.from } },
      { type: "Feature", properties: { part: "to" }, geometry: { type: "Point", coordinates: jump.to } },
    ],
  };
}

export function ghostLayers() {
  return [
    {
      id: GHOST_LAYER_ID,
      type: "circle",
      source: SOURCES.ghosts,
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 3.5, 14, 6],
        "circle-color": reasonColourExpression(),
        "circle-opacity": ["match", ["get", "status"], "new", 0.35, 0.15],
        "circle-stroke-color": reasonColourExpression(),
        "circle-stroke-width": 1.5,
        "circle-stroke-opacity": ["match", ["get", "status"], "new", 0.9, 0.4],
      },
    },
    {
      id: "dlq-picked",
      type: "circle",
      source: SOURCES.picked,
      paint: { "circle-radius": 11, "circle-color": "#f8fafc", "circle-opacity": 0.12, "circle-stroke-color": "#f8fafc", "circle-stroke-width": 2 },
    },
    {
      id: "dlq-jump-line",
      type: "line",
      source: SOURCES.jump,
      filter: ["==", ["geometry-type"], "LineString"],
      layout: { "line-cap": "butt" },
      paint: { "line-color": "#f87171", "line-width": 2.5, "line-dasharray": [2, 1.5] },
    },
    {
      id: "dlq-jump-ends",
      type: "circle",
      source: SOURCES.jump,
      filter: ["==", ["geometry-type"], "Point"],
      paint: {
        "circle-radius": 6,
        // The last accepted fix in the live map's "online" green, the rejected point in red.
        "circle-color": ["match", ["get", "part"], "from", "#22c55e", "#ef4444"],
        "circle-stroke-color": "#0b1220",
        "circle-stroke-width": 2,
      },
    },
  ];
}
