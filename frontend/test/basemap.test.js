import { test } from "node:test";
import assert from "node:assert/strict";
import { BASEMAP_SOURCE, OVERLAY_PAINT, ROAD_LAYERS, archiveUrl, basemapStyle, registerProtocol } from "../src/basemap.js";
import { overlayLayers } from "../src/style.js";

const PAGE = "http://127.0.0.1:8000/";

test("the archive is read from the gateway the page came from", () => {
  assert.equal(archiveUrl("basemap.pmtiles", PAGE), "pmtiles://http://127.0.0.1:8000/basemap.pmtiles");
  assert.equal(archiveUrl("basemap.pmtiles", "https://map.example/sub/"), "pmtiles://https://map.example/sub/basemap.pmtiles");
});

test("the style needs no third-party service: one vector source from the archive, no glyphs, no sprite, no labels", () => {
  const style = basemapStyle("basemap.pmtiles", PAGE);
  assert.equal(style.glyphs, undefined);
  assert.equal(style.sprite, undefined);
  assert.deepEqual(Object.keys(style.sources), [BASEMAP_SOURCE]);
  assert.equal(style.sources[BASEMAP_SOURCE].type, "vector");
  assert.match(style.sources[BASEMAP_SOURCE].attribution, /OpenStreetMap/);
  assert.ok(style.layers.length > 20);
  for (const layer of style.layers) {
    assert.notEqual(layer.type, "symbol", `${layer.id} would need glyphs or a sprite`);
    if (layer.type !== "background") assert.equal(layer.source, BASEMAP_SOURCE, layer.id);
  }
  const ids = style.layers.map((layer) => layer.id);
  for (const road of ROAD_LAYERS) assert.ok(ids.includes(road), road);
});

test("the page's own layers go on top without clashing, and the overrides name layers that exist", () => {
  const basemapIds = new Set(basemapStyle("basemap.pmtiles", PAGE).layers.map((layer) => layer.id));
  const overlayIds = overlayLayers().map((layer) => layer.id);
  for (const id of overlayIds) assert.ok(!basemapIds.has(id), id);
  for (const [id, paint] of Object.entries(OVERLAY_PAINT)) {
    const layer = overlayLayers().find((candidate) => candidate.id === id);
    assert.ok(layer, id);
    for (const property of Object.keys(paint)) assert.ok(property in layer.paint, `${id} ${property}`);
  }
});

test("the pmtiles protocol is registered once", () => {
  const added = [];
  const addProtocol = (name, load) => added.push([name, typeof load]);
  registerProtocol(addProtocol);
  registerProtocol(addProtocol);
  assert.deepEqual(added, [["pmtiles", "function"]]);
});
