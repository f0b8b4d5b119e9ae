// The review page's small map: the live map's base (service area, zones; map.js) with "ghosts" on top —
// rejected pings of the current page that have coordinates, coloured by reason — and, for a selected
// impossible_speed ping, a dashed line from the courier's last accepted fix to the rejected point.

import { createMap } from "../map.js";
import { jumpOf } from "./payload.js";
import { EMPTY, GHOST_LAYER_ID, SOURCES, ghostFeatures, ghostLayers, jumpFeatures } from "./ghostmap-data.js";

/**
 * Create the small map in `container`. onPick(id) is called when a ghost is clicked. Returns an object whose
 * methods are safe to call before the map has loaded (the last state is applied once it has) and which turns
 * into a no-op if WebGL is unavailable.
 */
export function createGhostMap(container, { serviceArea, tileUrl, onPick }) {
  let map = null;
  let loaded = false;
  let ghosts = EMPTY;
  let jump = null;
  let picked = null;
  let failed = null;

  const apply = () => {
    if (!loaded) return;
    map.getSource(SOURCES.ghosts).setData(ghosts);
    map.getSource(SOURCES.jump).setData(jumpFeatures(jump));
    map.getSource(SOURCES.picked).setData(
      picked ? { type: "FeatureCollection", features: [{ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: picked } }] } : EMPTY,
    );
  };

  let ready;
  try {
    const created = createMap(container, { serviceArea, tileUrl });
    map = created.map;
    ready = created.ready.then(() => {
      for (const id of Object.values(SOURCES)) map.addSource(id, { type: "geojson", data: EMPTY });
      for (const layer of ghostLayers()) map.addLayer(layer);
      loaded = true;
      apply();
    });
    map.on("click", GHOST_LAYER_ID, (event) => {
      const feature = event.features && event.features[0];
      if (feature && typeof feature.properties.id === "string") onPick(feature.properties.id);
    });
    map.on("mouseenter", GHOST_LAYER_ID, () => (map.getCanvas().style.cursor = "pointer"));
    map.on("mouseleave", GHOST_LAYER_ID, () => (map.getCanvas().style.cursor = ""));
  } catch (error) {
    failed = error;
    ready = Promise.resolve();
  }

  return {
    ready,
    get failed() {
      return failed;
    },
    setItems(items) {
      ghosts = ghostFeatures(items);
      apply();
    },
    /** Highlight `entry` (null clears) and, for an impossible_speed ping with a known last fix, draw the jump. */
    show(entry) {
      jump = entry ? jumpOf(entry) : null;
      picked = entry && Number.isFinite(entry.lat) && Number.isFinite(entry.lon) ? [entry.lon, entry.lat] : null;
      apply();
      if (!loaded) return;
      if (jump !== null) {
        const [a, b] = [jump.from, jump.to];
        map.fitBounds(
          [[Math.min(a[0], b[0]), Math.min(a[1], b[1])], [Math.max(a[0], b[0]), Math.max(a[1], b[1])]],
          { padding: 48, maxZoom: 15, duration: 600 },
        );
      } else if (picked !== null) {
        map.easeTo({ center: picked, zoom: Math.max(map.getZoom(), 12.5), duration: 600 });
      }
    },
    ghostCount: () => (loaded ? ghosts.features.length : 0),
    lineDrawn: () => loaded && jump !== null,
    resize: () => map && map.resize(),
  };
}
