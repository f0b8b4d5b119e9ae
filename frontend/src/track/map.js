// The tracking page's map: MapLibre with three HTML markers (courier, pickup, drop-off) over the local basemap
// when the gateway has one (basemap.js, the live map's rules: a PMTiles archive from the gateway itself, no
// glyphs, no sprite, nothing from another host) and a plain background otherwise. main.js imports this module
// lazily, so the card shows the order's state and ETA before MapLibre (most of the page's bytes) has arrived,
// and a refused link never downloads it.

import * as maplibregl from "maplibre-gl";

// As on the live map: MapLibre 6 runs its worker from a file the build copies next to the bundle.
maplibregl.setWorkerUrl(new URL(`./maplibre-gl-worker.js?v=${maplibregl.getVersion()}`, import.meta.url).href);
// MapLibre's style sheet (72 KB) is a file the build copies there too, linked when the map is made rather than
// bundled into the page's CSS, which the card's first paint waits for.
const STYLESHEET_URL = new URL(`./maplibre-gl.css?v=${maplibregl.getVersion()}`, import.meta.url).href;

/** Link MapLibre's style sheet (a `<link>` to the gateway's own file: the CSP's style-src 'self'). */
export function loadStylesheet() {
  return new Promise((resolve, reject) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = STYLESHEET_URL;
    link.onload = resolve;
    link.onerror = () => reject(new Error("MapLibre's style sheet did not load"));
    document.head.append(link);
  });
}

const BACKGROUND = "#0b1220";
const LINE_SOURCE = "to-target";
const EMPTY = { type: "FeatureCollection", features: [] };
const FIT_MAX_ZOOM = 16;

/** The basemap for the archive at `path` (resolved against `rootUrl`), as map.js of the live map loads it. */
export async function loadBasemap(path, rootUrl) {
  const basemap = await import("../basemap.js");
  basemap.registerProtocol(maplibregl.addProtocol);
  return { style: basemap.basemapStyle(path, rootUrl) };
}

function markerElement(className, label) {
  const element = document.createElement("div");
  element.className = `track-marker ${className}`;
  element.setAttribute("role", "img");
  element.setAttribute("aria-label", label);
  return element;
}

/**
 * A map in `container` centred on `center` ([lon, lat]); `basemap` from loadBasemap or null. Returns the
 * handful of operations main.js needs; `ready` resolves once the style has loaded.
 */
export function createTrackMap(container, { center, basemap }) {
  const map = new maplibregl.Map({
    container,
    style: basemap
      ? basemap.style
      : { version: 8, sources: {}, layers: [{ id: "background", type: "background", paint: { "background-color": BACKGROUND } }] },
    center,
    zoom: 14,
    minZoom: 3,
    maxZoom: 19,
    attributionControl: basemap ? { compact: true } : false,
    dragRotate: false,
    pitchWithRotate: false,
  });
  map.touchZoomRotate.disableRotation();
  // The straight line from the courier to where it is headed: the distance the ETA is measured on.
  let line = EMPTY;
  let loaded = false;
  const ready = new Promise((resolve) => {
    map.once("load", () => {
      map.addSource(LINE_SOURCE, { type: "geojson", data: line });
      map.addLayer({
        id: LINE_SOURCE,
        type: "line",
        source: LINE_SOURCE,
        layout: { "line-cap": "round" },
        paint: { "line-color": "#38bdf8", "line-width": 2.5, "line-opacity": 0.7, "line-dasharray": [0.5, 2] },
      });
      loaded = true;
      resolve();
    });
  });

  const markers = new Map(); // "courier" | "pickup" | "dropoff" -> Marker
  function place(kind, lngLat, className, label) {
    let marker = markers.get(kind);
    if (lngLat === null) {
      if (marker !== undefined) marker.remove();
      markers.delete(kind);
      return null;
    }
    if (marker === undefined) {
      marker = new maplibregl.Marker({ element: markerElement(className, label), anchor: "center" });
      marker.setLngLat(lngLat).addTo(map);
      markers.set(kind, marker);
    } else {
      marker.setLngLat(lngLat);
    }
    return marker;
  }

  return {
    map,
    ready,
    setDropoff: (lngLat) => place("dropoff", lngLat, "track-dropoff", "Drop-off"),
    setPickup: (lngLat) => place("pickup", lngLat, "track-pickup", "Pickup"),
    /** Draw the courier at [lon, lat], or remove it (null); `coarse`: an approximate position. */
    setCourier(lngLat, coarse = false) {
      const marker = place("courier", lngLat, "track-courier", "Courier");
      if (marker !== null) {
        marker.getElement().classList.toggle("coarse", coarse);
        marker.getElement().setAttribute("aria-label", coarse ? "Courier (approximate location)" : "Courier");
      }
    },
    /** The dashed straight line from `from` to `to` ([lon, lat] each), or none (null). */
    setLine(from, to) {
      line =
        from === null || to === null
          ? EMPTY
          : { type: "Feature", properties: {}, geometry: { type: "LineString", coordinates: [from, to] } };
      if (loaded) map.getSource(LINE_SOURCE).setData(line);
    },
    /** Call `callback` when the customer starts moving the map (a drag, a pinch, a wheel; not our fits). */
    onUserMove(callback) {
      map.on("movestart", (event) => {
        if (event.originalEvent) callback();
      });
    },
    /** Frame `bounds` ([[w, s], [e, n]]) with room for the card over the bottom `bottomPx` of the map. */
    fit(bounds, bottomPx, animate) {
      const height = container.clientHeight;
      const bottom = Math.min(bottomPx + 32, Math.max(32, height - 120));
      map.fitBounds(bounds, {
        padding: { top: 64, left: 40, right: 40, bottom },
        maxZoom: FIT_MAX_ZOOM,
        duration: animate ? 600 : 0,
      });
    },
    /** The part of the map the customer can see (above the card): [[w, s], [e, n]]. */
    visibleBounds(bottomPx) {
      const rect = container.getBoundingClientRect();
      const top = map.unproject([0, 0]);
      const bottom = map.unproject([rect.width, Math.max(1, rect.height - bottomPx)]);
      return [
        [Math.min(top.lng, bottom.lng), Math.min(top.lat, bottom.lat)],
        [Math.max(top.lng, bottom.lng), Math.max(top.lat, bottom.lat)],
      ];
    },
    /** Where [lon, lat] is drawn, in viewport CSS pixels (browser tests). */
    screenPosition(lngLat) {
      const point = map.project(lngLat);
      const rect = container.getBoundingClientRect();
      return { x: rect.left + point.x, y: rect.top + point.y };
    },
    remove() {
      for (const marker of markers.values()) marker.remove();
      markers.clear();
      map.remove();
    },
  };
}
