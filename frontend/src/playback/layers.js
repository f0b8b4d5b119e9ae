// Playback's sources and layers on the live map, and hiding the live markers while it plays. Everything that
// changes per frame goes through the set* functions here; controller.js decides when.

import { COURIER_LAYER_ID } from "../style.js";

export const SOURCES = Object.freeze({
  route: "playback-route",
  ghosts: "playback-ghosts",
  marker: "playback-marker",
  fleet: "playback-fleet",
});
export const MARKER_LAYER_ID = "playback-marker";
export const FLEET_LAYER_ID = "playback-fleet";
export const GHOST_LAYER_ID = "playback-ghosts";
// The live page's layers hidden while playback shows: live frames keep arriving, but move nothing drawn.
const LIVE_LAYERS = [COURIER_LAYER_ID, "selected-halo", "trail"];
const EMPTY = Object.freeze({ type: "FeatureCollection", features: [] });

/** The layer definitions, plain data (route under ghosts under the marker; the fleet as one MultiPoint). */
export function playbackLayers() {
  return [
    {
      id: "playback-route",
      type: "line",
      source: SOURCES.route,
      layout: { "line-join": "round", "line-cap": "round" },
      paint: { "line-color": "#fbbf24", "line-width": 3, "line-opacity": 0.9 },
    },
    {
      id: GHOST_LAYER_ID,
      type: "circle",
      source: SOURCES.ghosts,
      paint: {
        "circle-radius": 6,
        "circle-color": "#f87171",
        "circle-opacity": 0.2,
        "circle-stroke-color": "#f87171",
        "circle-stroke-width": 1.5,
        "circle-stroke-opacity": 0.9,
      },
    },
    {
      id: FLEET_LAYER_ID,
      type: "circle",
      source: SOURCES.fleet,
      paint: {
        "circle-radius": ["interpolate", ["linear"], ["zoom"], 9, 2, 13, 3.5, 17, 6],
        "circle-color": "#fbbf24",
        "circle-opacity": 0.9,
        "circle-stroke-color": "#0b1220",
        "circle-stroke-width": 0.75,
      },
    },
    {
      id: MARKER_LAYER_ID,
      type: "circle",
      source: SOURCES.marker,
      paint: {
        "circle-radius": 7,
        "circle-color": "#fbbf24",
        "circle-stroke-color": "#f8fafc",
        "circle-stroke-width": 2,
      },
    },
  ];
}

/** Add the sources and layers once (the fleet source: no clustering, a small buffer, exact points). */
export function addPlaybackLayers(map) {
  if (map.getSource(SOURCES.marker)) return;
  map.addSource(SOURCES.route, { type: "geojson", data: EMPTY });
  map.addSource(SOURCES.ghosts, { type: "geojson", data: EMPTY });
  map.addSource(SOURCES.fleet, { type: "geojson", data: EMPTY, buffer: 16, tolerance: 0, maxzoom: 16 });
  map.addSource(SOURCES.marker, { type: "geojson", data: EMPTY });
  for (const layer of playbackLayers()) map.addLayer(layer);
}

export function showLive(map, visible) {
  for (const id of LIVE_LAYERS) {
    if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", visible ? "visible" : "none");
  }
}

/** Whether the live markers are drawn. */
export function liveShown(map) {
  return map.getLayoutProperty(COURIER_LAYER_ID, "visibility") !== "none";
}

function points(coordinates) {
  return {
    type: "FeatureCollection",
    features: [{ type: "Feature", properties: {}, geometry: { type: "MultiPoint", coordinates } }],
  };
}

export function setMarker(map, position) {
  map.getSource(SOURCES.marker).setData(position === null ? EMPTY : points([[position.lon, position.lat]]));
}

export function setRoute(map, coordinates) {
  const data =
    coordinates.length < 2
      ? EMPTY
      : { type: "Feature", properties: {}, geometry: { type: "LineString", coordinates } };
  map.getSource(SOURCES.route).setData(data);
}

export function setGhosts(map, collection) {
  map.getSource(SOURCES.ghosts).setData(collection);
}

export function setFleet(map, coordinates) {
  map.getSource(SOURCES.fleet).setData(points(coordinates));
}

export function clearPlayback(map) {
  if (!map.getSource(SOURCES.marker)) return;
  for (const id of Object.values(SOURCES)) map.getSource(id).setData(EMPTY);
}
