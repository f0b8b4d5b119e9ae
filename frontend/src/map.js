// MapLibre setup: the base layer (service area and zones from the gateway, and underneath either the local
// basemap's streets (basemap.js, loaded only when the gateway has one) or optional raster tiles), the courier
// circles, the selected courier's halo and trail, and the zones' names with how many couriers each holds.
// Everything that changes per frame goes through the set* functions here; main.js decides when.

import * as maplibregl from "maplibre-gl";
import { couriersInBox } from "./protocol.js";
import {
  SOURCE_IDS,
  baseStyle,
  geojsonBounds,
  labelPoint,
  overlayLayers,
  overlaySources,
} from "./style.js";

// MapLibre 6 runs its worker as a separate module file; the build copies it next to the bundle.
// The version query keeps a cached worker from an older build from pairing with a newer main thread.
maplibregl.setWorkerUrl(
  new URL(`./maplibre-gl-worker.js?v=${maplibregl.getVersion()}`, import.meta.url).href,
);

const FALLBACK_CENTRE = [77.5946, 12.9716]; // Bengaluru, when /api/service-area is unavailable
const EMPTY = { type: "FeatureCollection", features: [] };

/**
 * The local basemap for the archive at `path` (relative to the page, from /api/config): basemap.js and the
 * pmtiles package are fetched now, as a chunk of their own, and the `pmtiles://` protocol registered.
 */
export async function loadBasemap(path) {
  const basemap = await import("./basemap.js");
  // Only the function: handing over the module namespace would keep all of MapLibre in the bundle (27 KB).
  basemap.registerProtocol(maplibregl.addProtocol);
  return {
    style: basemap.basemapStyle(path, location.href),
    overlayPaint: basemap.OVERLAY_PAINT,
    source: basemap.BASEMAP_SOURCE,
    roadLayers: basemap.ROAD_LAYERS,
  };
}

/**
 * Create the map in `container`. Resolves the returned `ready` promise when the style and overlay layers are
 * in place. `serviceArea` may be null (then the map centres on the fallback point); `basemap` is what
 * loadBasemap gave, or null (then raster tiles from `tileUrl`, if any).
 */
export function createMap(container, { serviceArea, tileUrl, basemap = null }) {
  const bounds = geojsonBounds(serviceArea);
  const map = new maplibregl.Map({
    container,
    style: basemap ? basemap.style : baseStyle(tileUrl),
    ...(bounds ? { bounds, fitBoundsOptions: { padding: 32 } } : { center: FALLBACK_CENTRE, zoom: 11 }),
    minZoom: 3,
    maxZoom: 19,
    attributionControl: basemap || tileUrl ? { compact: true } : false,
    dragRotate: false,
    pitchWithRotate: false,
    // The map is redrawn several times a second; keep the canvas cheap to read for screenshots/tests only.
    canvasContextAttributes: { antialias: false, preserveDrawingBuffer: false },
  });
  map.touchZoomRotate.disableRotation();
  map.keyboard.enable();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "bottom-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");

  const ready = new Promise((resolve) => {
    map.on("load", () => {
      for (const [id, source] of Object.entries(overlaySources(serviceArea))) map.addSource(id, source);
      for (const layer of overlayLayers()) map.addLayer(layer);
      for (const [id, paint] of Object.entries(basemap ? basemap.overlayPaint : {})) {
        for (const [property, value] of Object.entries(paint)) map.setPaintProperty(id, property, value);
      }
      addZoneLabels(map, serviceArea);
      resolve(map);
    });
  });
  return { map, ready };
}

/** map -> zone name -> the count elements of its labels (a zone of several polygons has several). */
const zoneCountElements = new WeakMap();

function addZoneLabels(map, serviceArea) {
  const counts = new Map();
  for (const feature of (serviceArea && serviceArea.features) || []) {
    const kind = feature.properties && feature.properties.kind;
    if (kind !== "zone" || !feature.properties.name) continue;
    const point = labelPoint(feature);
    if (point === null) continue;
    const name = String(feature.properties.name);
    const element = document.createElement("div");
    element.className = "zone-label";
    element.dataset.zone = name;
    element.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.textContent = name;
    const count = document.createElement("span");
    count.className = "zone-count";
    count.hidden = true; // until the first stats frame says
    element.append(label, count);
    if (!counts.has(name)) counts.set(name, []);
    counts.get(name).push(count);
    new maplibregl.Marker({ element, anchor: "center" }).setLngLat(point).addTo(map);
  }
  zoneCountElements.set(map, counts);
}

/**
 * Show beside each zone's name how many couriers it holds now: `counts` is the `zones` object of a stats
 * frame (zone name -> couriers not offline whose latest fix is in it, counted by the gateway over every
 * courier, tracker/zone_counts.py). A zone it does not name shows no count.
 */
export function setZoneCounts(map, counts) {
  const elements = zoneCountElements.get(map);
  if (elements === undefined) return;
  const known = counts !== null && typeof counts === "object" ? counts : {};
  for (const [name, countElements] of elements) {
    const value = Object.hasOwn(known, name) ? known[name] : undefined;
    const text = Number.isFinite(value) ? String(value) : "";
    for (const element of countElements) {
      if (element.textContent !== text) element.textContent = text;
      element.hidden = text === "";
    }
  }
}

export function setCouriers(map, collection) {
  map.getSource(SOURCE_IDS.couriers).setData(collection);
}

export function setTrail(map, geojson) {
  map.getSource(SOURCE_IDS.trail).setData(geojson || EMPTY);
}

export function setSelected(map, courier) {
  const data = courier
    ? {
        type: "FeatureCollection",
        features: [
          {
            type: "Feature",
            properties: {},
            geometry: { type: "Point", coordinates: [courier.lon, courier.lat] },
          },
        ],
      }
    : EMPTY;
  map.getSource(SOURCE_IDS.selected).setData(data);
}

/**
 * The partner id of the courier drawn nearest to `point` (map container pixels) within `radiusPx`, or null.
 * Hit-tested against the store, not the rendered tiles: the courier source holds one MultiPoint per class.
 */
export function courierAt(map, store, point, radiusPx = 8) {
  const corners = [
    map.unproject([point.x - radiusPx, point.y - radiusPx]),
    map.unproject([point.x + radiusPx, point.y + radiusPx]),
  ];
  const west = Math.min(corners[0].lng, corners[1].lng);
  const east = Math.max(corners[0].lng, corners[1].lng);
  const south = Math.min(corners[0].lat, corners[1].lat);
  const north = Math.max(corners[0].lat, corners[1].lat);
  let best = null;
  let bestDistance = radiusPx * radiusPx;
  for (const partnerId of couriersInBox(store, west, south, east, north)) {
    const projected = map.project(store.entries.get(partnerId).coordinates);
    const distance = (projected.x - point.x) ** 2 + (projected.y - point.y) ** 2;
    if (distance <= bestDistance) {
      bestDistance = distance;
      best = partnerId;
    }
  }
  return best;
}

export function visibleBbox(map) {
  const bounds = map.getBounds();
  return [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()];
}
