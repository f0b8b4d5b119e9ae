// Map style and layer definitions as plain data (no MapLibre import, so node tests can check them).
// No glyph or sprite URLs anywhere: the page must work with no network beyond its own gateway, so names are
// drawn as HTML labels (there are only a handful of zones) and couriers are circles, not icons.

export const STATUS_COLOURS = Object.freeze({
  online: "#22c55e",
  idle: "#f59e0b",
  stale: "#94a3b8",
  offline: "#dc2626",
});
const UNKNOWN_STATUS_COLOUR = "#64748b";

/** Base circle radius in pixels at zoom 13, by vehicle: size is how the map tells vehicles apart. */
export const VEHICLE_RADII = Object.freeze({ walk: 2.5, bike: 3.5, scooter: 4.25, car: 5.25 });
const UNKNOWN_VEHICLE_RADIUS = 3.5;

export const SOURCE_IDS = Object.freeze({
  serviceArea: "service-area",
  couriers: "couriers",
  trail: "trail",
  selected: "selected",
  tiles: "tiles",
});

export const COURIER_LAYER_ID = "couriers";

const EMPTY = Object.freeze({ type: "FeatureCollection", features: [] });

export function baseStyle(tileUrl) {
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: "background", type: "background", paint: { "background-color": "#0b1220" } }],
  };
  if (typeof tileUrl === "string" && tileUrl.length > 0) {
    style.sources[SOURCE_IDS.tiles] = { type: "raster", tiles: [tileUrl], tileSize: 256, maxzoom: 19 };
    style.layers.push({
      id: "tiles",
      type: "raster",
      source: SOURCE_IDS.tiles,
      paint: { "raster-saturation": -0.6, "raster-brightness-max": 0.55 },
    });
  }
  return style;
}

function colourByStatus() {
  const expression = ["match", ["get", "status"]];
  for (const [status, colour] of Object.entries(STATUS_COLOURS)) expression.push(status, colour);
  expression.push(UNKNOWN_STATUS_COLOUR);
  return expression;
}

function radiusByVehicle(scale) {
  const expression = ["match", ["get", "vehicle"]];
  for (const [vehicle, radius] of Object.entries(VEHICLE_RADII)) expression.push(vehicle, radius * scale);
  expression.push(UNKNOWN_VEHICLE_RADIUS * scale);
  return expression;
}

/** Sources added on top of the base style; `serviceArea` is the GeoJSON from /api/service-area. */
export function overlaySources(serviceArea) {
  return {
    [SOURCE_IDS.serviceArea]: { type: "geojson", data: serviceArea || EMPTY },
    [SOURCE_IDS.trail]: { type: "geojson", data: EMPTY },
    // Couriers move every tick: no clustering, a small buffer and a low tolerance keep updates cheap and
    // points exact.
    [SOURCE_IDS.couriers]: { type: "geojson", data: EMPTY, buffer: 16, tolerance: 0, maxzoom: 16 },
    [SOURCE_IDS.selected]: { type: "geojson", data: EMPTY },
  };
}

export function overlayLayers() {
  const isZone = ["==", ["get", "kind"], "zone"];
  const isServiceArea = ["==", ["get", "kind"], "service_area"];
  return [
    {
      id: "service-area-fill",
      type: "fill",
      source: SOURCE_IDS.serviceArea,
      filter: isServiceArea,
      paint: { "fill-color": "#16213a", "fill-opacity": 0.85 },
    },
    {
      id: "zone-fill",
      type: "fill",
      source: SOURCE_IDS.serviceArea,
      filter: isZone,
      paint: { "fill-color": "#3b82f6", "fill-opacity": 0.07 },
    },
    {
      id: "zone-outline",
      type: "line",
      source: SOURCE_IDS.serviceArea,
      filter: isZone,
      paint: { "line-color": "#60a5fa", "line-opacity": 0.45, "line-width": 1, "line-dasharray": [3, 2] },
    },
    {
      id: "service-area-outline",
      type: "line",
      source: SOURCE_IDS.serviceArea,
      filter: isServiceArea,
      paint: { "line-color": "#7dd3fc", "line-opacity": 0.8, "line-width": 1.5 },
    },
    {
      id: "trail",
      type: "line",
      source: SOURCE_IDS.trail,
      layout: { "line-join": "round", "line-cap": "round" },
      paint: { "line-color": "#38bdf8", "line-width": 3, "line-opacity": 0.85 },
    },
    {
      id: COURIER_LAYER_ID,
      type: "circle",
      source: SOURCE_IDS.couriers,
      paint: {
        "circle-color": colourByStatus(),
        "circle-radius": [
          "interpolate",
          ["linear"],
          ["zoom"],
          9,
          radiusByVehicle(0.6),
          13,
          radiusByVehicle(1),
          17,
          radiusByVehicle(2),
        ],
        // Cars get a light ring so the largest class reads as "vehicle", not just "bigger dot".
        "circle-stroke-color": ["match", ["get", "vehicle"], "car", "#e2e8f0", "#0b1220"],
        "circle-stroke-width": ["match", ["get", "vehicle"], "car", 1.25, 0.75],
        "circle-opacity": ["match", ["get", "status"], "offline", 0.75, 0.95],
      },
    },
    {
      id: "selected-halo",
      type: "circle",
      source: SOURCE_IDS.selected,
      paint: {
        "circle-radius": 11,
        "circle-color": "#38bdf8",
        "circle-opacity": 0.18,
        "circle-stroke-color": "#f8fafc",
        "circle-stroke-width": 2,
      },
    },
  ];
}

/** [[west, south], [east, north]] around every coordinate of a GeoJSON FeatureCollection, or null. */
export function geojsonBounds(collection) {
  let west = Infinity;
  let south = Infinity;
  let east = -Infinity;
  let north = -Infinity;
  const visit = (coordinates) => {
    if (typeof coordinates[0] === "number") {
      west = Math.min(west, coordinates[0]);
      east = Math.max(east, coordinates[0]);
      south = Math.min(south, coordinates[1]);
      north = Math.max(north, coordinates[1]);
      return;
    }
    for (const child of coordinates) visit(child);
  };
  for (const feature of (collection && collection.features) || []) {
    if (feature && feature.geometry && Array.isArray(feature.geometry.coordinates)) {
      visit(feature.geometry.coordinates);
    }
  }
  return Number.isFinite(west) ? [[west, south], [east, north]] : null;
}

/** A label point for a polygon feature: the centre of its outer ring's bounding box. */
export function labelPoint(feature) {
  const bounds = geojsonBounds({ features: [feature] });
  if (bounds === null) return null;
  return [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2];
}
