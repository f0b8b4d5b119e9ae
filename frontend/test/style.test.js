import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { baseStyle, geojsonBounds, labelPoint, overlayLayers, overlaySources, STATUS_COLOURS } from "../src/style.js";

const serviceArea = JSON.parse(
  await readFile(new URL("../../tracker/data/service_area.geojson", import.meta.url), "utf8").catch(() => "null"),
);

test("base style loads nothing from another host unless a tile URL is configured", () => {
  const style = baseStyle(null);
  assert.deepEqual(Object.keys(style.sources), []);
  assert.equal(style.glyphs, undefined);
  assert.equal(style.sprite, undefined);
  const withTiles = baseStyle("https://tiles.example/{z}/{x}/{y}.png");
  assert.deepEqual(withTiles.sources.tiles.tiles, ["https://tiles.example/{z}/{x}/{y}.png"]);
  assert.equal(withTiles.layers[1].id, "tiles", "raster sits right above the background, under everything");
});

test("every overlay layer uses a declared source and no text (there are no glyphs)", () => {
  const sources = overlaySources(null);
  for (const layer of overlayLayers()) {
    assert.ok(layer.source in sources, layer.id);
    assert.notEqual(layer.type, "symbol", layer.id);
  }
});

test("courier colours cover every status", () => {
  assert.deepEqual(Object.keys(STATUS_COLOURS), ["online", "idle", "stale", "offline"]);
});

test("bounds and label points of the shipped service area", { skip: serviceArea === null }, () => {
  const [[west, south], [east, north]] = geojsonBounds(serviceArea);
  // The built-in service area contains at least 12.90-13.05 N, 77.52-77.68 E.
  assert.ok(west <= 77.52 && east >= 77.68 && south <= 12.9 && north >= 13.05);
  const zone = serviceArea.features.find((feature) => feature.properties.kind === "zone");
  const [lon, lat] = labelPoint(zone);
  assert.ok(lon > west && lon < east && lat > south && lat < north);
  assert.equal(geojsonBounds({ features: [] }), null);
});
