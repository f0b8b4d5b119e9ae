// Build the browser pages into dist/: one HTML file per entry at the top level (the gateway serves
// dist/index.html at "/" and, later, dist/dlq.html at "/dlq"), hashed bundles and CSS under dist/assets/, and
// MapLibre's worker next to them. Every asset is referenced relatively and nothing loads from another host.
//
//   node build.mjs            production build (minified)
//   node build.mjs --dev      unminified, for reading stack traces

import { build } from "esbuild";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, "dist");
const assets = path.join(dist, "assets");
const dev = process.argv.includes("--dev");

/**
 * One entry per page: the HTML template and the module it boots. `base`: where dist/ is from the URL the page
 * is served at ("./" by default; the tracking page is served at /track/<token>, one level down).
 */
export const PAGES = [
  { name: "index", html: "index.html", script: "src/main.js" },
  { name: "dlq", html: "dlq.html", script: "src/dlq/main.js" },
  { name: "track", html: "track.html", script: "src/track/main.js", base: "../" },
];

async function main() {
  await rm(dist, { recursive: true, force: true });
  await mkdir(assets, { recursive: true });

  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(PAGES.map((page) => [page.name, page.script])),
    outdir: assets,
    entryNames: "[name]-[hash]",
    chunkNames: "[name]-[hash]", // same folder as the entries: map.js resolves the worker next to itself
    assetNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    target: ["es2022"],
    minify: !dev,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });

  // MapLibre 6 ships its worker as a separate module; serve it as .js (a MIME type every server knows).
  await copyFile(
    path.join(root, "node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs"),
    path.join(assets, "maplibre-gl-worker.js"),
  );
  // The tracking page links MapLibre's style sheet only once it loads the map (src/track/map.js), so the first
  // paint of its card waits for none of it.
  await copyFile(path.join(root, "node_modules/maplibre-gl/dist/maplibre-gl.css"), path.join(assets, "maplibre-gl.css"));

  for (const page of PAGES) {
    const outputs = Object.entries(result.metafile.outputs).filter(
      ([, output]) => output.entryPoint === page.script,
    );
    const script = outputs.find(([file]) => file.endsWith(".js"));
    if (!script) throw new Error(`esbuild produced no script for page ${page.name}`);
    const css = script[1].cssBundle;
    const relative = (file) =>
      (page.base ?? "./") + path.relative(dist, path.join(root, file)).split(path.sep).join("/");
    let html = await readFile(path.join(root, page.html), "utf8");
    const replace = (marker, tag) => {
      if (!html.includes(marker)) throw new Error(`${page.html} lacks the marker ${marker}`);
      html = html.replace(marker, tag);
    };
    replace("<!-- build: styles -->", css ? `<link rel="stylesheet" href="${relative(css)}" />` : "");
    replace("<!-- build: scripts -->", `<script type="module" src="${relative(script[0])}"></script>`);
    await writeFile(path.join(dist, `${page.name}.html`), html);
  }

  const zipped = await gzipTexts(dist);

  const sizes = Object.entries(result.metafile.outputs)
    .filter(([file]) => !file.endsWith(".map"))
    .map(([file, output]) => `  ${path.relative(root, path.join(root, file))}  ${(output.bytes / 1024).toFixed(0)} KiB`);
  console.log(`built ${PAGES.length} page(s) into dist/${dev ? " (dev)" : ""}\n${sizes.join("\n")}`);
  console.log(`gzipped ${zipped.files} files: ${kib(zipped.raw)} KiB -> ${kib(zipped.gzipped)} KiB`);
}

const kib = (bytes) => (bytes / 1024).toFixed(0);

/** Text files the pages load, gzipped once here so the gateway serves them compressed at no CPU cost. */
export const GZIP_EXTENSIONS = Object.freeze([".html", ".js", ".css", ".svg", ".json"]);

/** Write `<file>.gz` (level 9) beside every such file under `dir`; the totals, for the build's log. */
async function gzipTexts(dir) {
  const totals = { files: 0, raw: 0, gzipped: 0 };
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !GZIP_EXTENSIONS.includes(path.extname(entry.name))) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    const raw = await readFile(file);
    const gzipped = gzipSync(raw, { level: 9 });
    await writeFile(`${file}.gz`, gzipped);
    totals.files += 1;
    totals.raw += raw.length;
    totals.gzipped += gzipped.length;
  }
  return totals;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
