// Real streets from a local archive (TRACKER_BASEMAP): a PMTiles archive of OpenStreetMap vector tiles that
// the gateway serves with range requests (tracker/basemap.py), read by the `pmtiles` package's protocol and
// drawn with the Protomaps basemap layers (`@protomaps/basemaps`, the style maintained for that schema).
//
// No third-party service at run time: the archive comes from the gateway (`pmtiles://` + the page's own
// origin: the CSP's connect-src 'self'), the tiles are decoded in MapLibre's worker (worker-src 'self'), and
// the style is the layer set *without labels*, which needs no glyphs (fonts) and no sprite. Zone names are
// drawn by the page as HTML, as without a basemap. main.js loads this module only when the gateway has a
// basemap, so a page without one downloads none of it.

import { Protocol } from "pmtiles";
import { layers, namedFlavor } from "@protomaps/basemaps";

export const BASEMAP_SOURCE = "basemap";
export const PMTILES_SCHEME = "pmtiles";
export const FLAVOR = "dark"; // the page's own theme is dark
export const OSM_ATTRIBUTION = "© OpenStreetMap contributors";
/** The street layers (for tests and for a look at what was drawn). */
export const ROAD_LAYERS = Object.freeze(["roads_minor", "roads_major", "roads_highway"]);

/**
 * Paint of the page's own layers over streets: the service area's fill is nearly opaque on the plain dark
 * background (so it reads as "the area we serve"), which would hide the streets under it.
 */
export const OVERLAY_PAINT = Object.freeze({
  "service-area-fill": Object.freeze({ "fill-opacity": 0.12 }),
  "zone-fill": Object.freeze({ "fill-opacity": 0.1 }),
});

/** The `pmtiles://` URL of the archive at `path` (relative to `pageUrl`, as /api/config gives it). */
export function archiveUrl(path, pageUrl) {
  return `${PMTILES_SCHEME}://${new URL(path, pageUrl).href}`;
}

/** The map style: the Protomaps layers without labels over the archive, and no glyphs or sprite. */
export function basemapStyle(path, pageUrl) {
  return {
    version: 8,
    sources: {
      [BASEMAP_SOURCE]: { type: "vector", url: archiveUrl(path, pageUrl), attribution: OSM_ATTRIBUTION },
    },
    layers: layers(BASEMAP_SOURCE, namedFlavor(FLAVOR)),
  };
}

let registered = false;

/** Teach MapLibre the `pmtiles://` scheme, once per page (`addProtocol`: MapLibre's function of that name). */
export function registerProtocol(addProtocol) {
  if (registered) return;
  addProtocol(PMTILES_SCHEME, new Protocol().tilev4);
  registered = true;
}
