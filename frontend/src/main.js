// Wiring of the live map page: fetch config and service area, create the map, keep the WebSocket open, apply
// frames to the store and push them to the map at most once per animation frame.
//
// Frame path and its cost budget: `message` event -> parseFrame -> applyCourierFrame (mutates only the
// couriers named) -> mark dirty -> requestAnimationFrame -> one source.setData with the whole collection.
// Several frames arriving within one animation frame cost one setData; in a background tab rAF stops, so
// frames keep merging into the store and the map catches up in one update when the tab is shown again.
// `frameApplyMs` records, per setData, the main-thread time from receiving the frame(s) to setData returning.

import "maplibre-gl/dist/maplibre-gl.css";
import "./styles.css";
import {
  applyCourierFrame,
  createStore,
  featureCollection,
  followMessage,
  frameLatencyMs,
  getCourier,
  paddedBbox,
  parseFrame,
  viewportMessage,
} from "./protocol.js";
import { extendTrail, mergeTrails, trailGeoJSON } from "./trail.js";
import { createConnection, webSocketUrl, WS_1008_POLICY_VIOLATION } from "./connection.js";
import { createReadAccess, fetchWithAccess, tokenStore, webSocketProtocols } from "./access.js";
import { createTokenPrompt } from "./token-dialog.js";
import {
  courierAt,
  createMap,
  loadBasemap,
  setCouriers,
  setSelected,
  setTrail,
  setZoneCounts,
  visibleBbox,
} from "./map.js";
import { createMotion, motionPreference, saveMotionPreference } from "./motion.js";
import { wireEventsFeed } from "./events-feed.js";
import { createPlayback } from "./playback/controller.js";
import {
  bindUi,
  hidePanel,
  renderConnection,
  renderFrameInfo,
  renderLegend,
  renderPanel,
  renderStats,
  showPanel,
  showToast,
} from "./ui.js";

const FRAME_SAMPLES_KEPT = 500;
const VIEWPORT_DELAY_MS = 250;
const FETCH_TIMEOUT_MS = 5000;
const FOLLOW_MIN_ZOOM = 14.5;
// Gliding markers are redrawn at most ~30 times a second, and less often when a redraw is costly (many
// couriers): the glides may take at most about a sixth of the main thread.
const MOTION_FRAME_MS = 33;
const MOTION_SHARE = 6;

const store = createStore();
const ui = bindUi(document);
const frameApplyMs = [];
// The viewer token, when the gateway wants one (access.js): asked for once, kept for the tab.
const access = createReadAccess({
  stores: [tokenStore(sessionStorageOrNull())],
  ask: createTokenPrompt({ dialog: ui.viewerDialog, input: ui.viewerInput, error: ui.viewerError }),
});

let map = null;
let mapReady = false;
let connection = null;
let renderedCount = 0;
let pendingApplyMs = 0;
let flushScheduled = false;
let lastLatencyMs = null;
let lastViewportSent = undefined;
let viewportTimer = null;
/** The courier shown in the side panel, or null. See ui.renderPanel for the fields. */
let selection = null;
// Smooth motion (motion.js): markers glide to each new fix; a switch in the legend, remembered per browser.
const motion = createMotion();
let smoothMotion = motionPreference(localStorageOrNull());
let animationScheduled = false;
let lastAnimatedAt = 0;
let motionFrameMs = MOTION_FRAME_MS;
let lastZoneCounts = null;
let basemap = null; // the local basemap (map.loadBasemap), when the gateway has one
let eventsFeed = null; // events-feed.js: polls from the first snapshot on (the token is good by then)
let playback = null; // the History control (playback/controller.js), once the map is ready

function localStorageOrNull() {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

function sessionStorageOrNull() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

async function fetchJson(path, options = {}) {
  try {
    const response = await fetchWithAccess(path, {
      access,
      timeoutMs: FETCH_TIMEOUT_MS,
      headers: { accept: "application/json" },
      ...options,
    });
    if (!response.ok) return { ok: false, status: response.status, body: null };
    return { ok: true, status: response.status, body: await response.json() };
  } catch (error) {
    return { ok: false, status: 0, body: null, error };
  }
}

// --- frames ------------------------------------------------------------------------------------------

function handleFrame(frame, receivedAtMs) {
  switch (frame.type) {
    case "snapshot":
    case "delta":
      if (frame.type === "snapshot" && eventsFeed !== null) eventsFeed.start();
      applyCourierFrame(store, frame);
      if (smoothMotion) motion.retargetFrame(store.entries, frame, performance.now());
      lastLatencyMs = frameLatencyMs(frame, receivedAtMs) ?? lastLatencyMs;
      if (selection !== null) trackSelection();
      return true;
    case "stats":
      renderStats(ui, frame);
      lastZoneCounts = frame.zones;
      if (mapReady) setZoneCounts(map, lastZoneCounts);
      return false;
    case "error":
      console.warn("gateway error frame:", frame.message);
      showToast(ui, `Server: ${frame.message}`);
      return false;
    case "pong":
      return false;
    default:
      console.debug("ignoring frame of unknown type", frame.type);
      return false;
  }
}

function onMessage(text, receivedAtMs) {
  const startedAt = performance.now();
  let frame;
  try {
    frame = parseFrame(text);
  } catch (error) {
    console.warn("dropping unparseable frame:", error.message);
    return;
  }
  if (handleFrame(frame, receivedAtMs)) {
    pendingApplyMs += performance.now() - startedAt;
    scheduleFlush();
  }
}

function scheduleFlush() {
  if (flushScheduled) return;
  flushScheduled = true;
  requestAnimationFrame(flush);
}

/**
 * Push the store to the map; returns the frame-apply sample it recorded (or null when nothing was due).
 * `renderedCount` is the number of courier points handed to the map source by the last setData.
 */
function flush() {
  flushScheduled = false;
  if (!mapReady) return null; // the map's `load` handler flushes once it can
  let sample = null;
  // While a playback is shown the live markers are hidden: the store keeps up, the map catches up after.
  if (store.dirty && !(playback !== null && playback.active())) {
    const startedAt = performance.now();
    // Gliding markers: draw them where they are now, not at the fixes the frame just put in the store.
    if (smoothMotion && motion.step(store.entries, performance.now())) scheduleAnimation();
    setCouriers(map, featureCollection(store));
    store.dirty = false;
    renderedCount = store.entries.size;
    sample = pendingApplyMs + (performance.now() - startedAt);
    pendingApplyMs = 0;
    frameApplyMs.push(sample);
    if (frameApplyMs.length > FRAME_SAMPLES_KEPT) frameApplyMs.splice(0, frameApplyMs.length - FRAME_SAMPLES_KEPT);
  }
  renderFrameInfo(ui, { inView: store.entries.size, latencyMs: lastLatencyMs });
  if (selection !== null && selection.changed) renderSelection();
  return sample;
}

// --- smooth motion -----------------------------------------------------------------------------------

function scheduleAnimation() {
  if (animationScheduled) return;
  animationScheduled = true;
  requestAnimationFrame(animate);
}

/** One step of the glides: move the markers (and the selected courier's halo), and go on while any moves. */
function animate(frameTime) {
  animationScheduled = false;
  if (!mapReady || !smoothMotion || (playback !== null && playback.active())) return;
  if (frameTime - lastAnimatedAt < motionFrameMs) {
    scheduleAnimation();
    return;
  }
  lastAnimatedAt = frameTime;
  const startedAt = performance.now();
  const moving = motion.step(store.entries, startedAt);
  setCouriers(map, featureCollection(store));
  if (selection !== null && selection.courier) setSelected(map, drawnCourier(selection));
  motionFrameMs = Math.max(MOTION_FRAME_MS, (performance.now() - startedAt) * MOTION_SHARE);
  if (moving) scheduleAnimation();
}

function setSmoothMotion(on) {
  smoothMotion = on;
  saveMotionPreference(localStorageOrNull(), on);
  if (on) return; // glides start with the next fixes
  motion.stop(store.entries);
  store.dirty = true;
  scheduleFlush();
}

/** The selected courier where its marker is drawn (mid-glide, that is not yet its newest fix). */
function drawnCourier(current) {
  const entry = store.entries.get(current.id);
  return entry ? { lon: entry.coordinates[0], lat: entry.coordinates[1] } : current.courier;
}

// --- selection, trail, follow ------------------------------------------------------------------------

/** After a courier frame: pick up the selected courier's new position (and extend its trail). */
function trackSelection() {
  const courier = getCourier(store, selection.id);
  const inView = courier !== undefined;
  if (inView !== selection.inView) {
    selection.inView = inView;
    selection.changed = true;
  }
  if (courier !== undefined && courier !== selection.courier) {
    selection.courier = courier;
    extendTrail(selection.trail, courier);
    selection.moved = true;
    selection.changed = true;
  }
}

function renderSelection() {
  selection.changed = false;
  selection.trailPoints = selection.trail.length;
  setSelected(map, selection.courier ? drawnCourier(selection) : null);
  setTrail(map, trailGeoJSON(selection.trail));
  renderPanel(ui, selection, Date.now());
  if (selection.following && selection.moved && selection.courier) {
    map.easeTo({ center: [selection.courier.lon, selection.courier.lat], duration: 500, essential: true });
  }
  selection.moved = false;
}

async function select(partnerId, { flyTo = false } = {}) {
  if (selection !== null && selection.id === partnerId) return;
  if (selection !== null) deselect({ restoreFocus: false });
  const courier = getCourier(store, partnerId) ?? null;
  const current = {
    id: partnerId,
    courier,
    inView: courier !== null,
    trail: courier ? [[courier.ts, courier.lat, courier.lon]] : [],
    trailLoaded: false,
    trailPoints: 0,
    following: false,
    changed: true,
    moved: false,
    error: null,
    returnFocusTo: document.activeElement,
  };
  selection = current;
  showPanel(ui);
  if (mapReady) renderSelection();
  else renderPanel(ui, current, Date.now());

  const response = await fetchJson(`api/couriers/${encodeURIComponent(partnerId)}`);
  if (selection !== current) return; // closed or replaced meanwhile
  if (response.ok && response.body) {
    const body = response.body;
    current.trail = mergeTrails(Array.isArray(body.trail) ? body.trail : [], current.trail);
    if (current.courier === null && body.position) current.courier = body.position;
  } else {
    current.error =
      response.status === 404
        ? `No courier with id ${partnerId}.`
        : response.status === 401
          ? "The viewer token was refused."
          : "Could not load this courier's trail.";
  }
  current.trailLoaded = true;
  current.changed = true;
  if (flyTo && current.courier) {
    map.flyTo({ center: [current.courier.lon, current.courier.lat], zoom: Math.max(map.getZoom(), 15) });
  }
  if (mapReady) renderSelection();
}

function deselect({ restoreFocus = true } = {}) {
  if (selection === null) return;
  const previous = selection;
  if (previous.following) connection.send(followMessage(null));
  selection = null;
  hidePanel(ui);
  if (mapReady) {
    setSelected(map, null);
    setTrail(map, null);
  }
  if (restoreFocus && previous.returnFocusTo && document.contains(previous.returnFocusTo)) {
    previous.returnFocusTo.focus({ preventScroll: true });
  }
}

function setFollowing(following) {
  if (selection === null || selection.following === following) return;
  selection.following = following;
  connection.send(followMessage(following ? selection.id : null));
  selection.changed = true;
  if (mapReady) renderSelection();
  // Starting to follow also zooms in far enough to see the courier's street and trail.
  if (following && mapReady && selection.courier) {
    map.easeTo({
      center: [selection.courier.lon, selection.courier.lat],
      zoom: Math.max(map.getZoom(), FOLLOW_MIN_ZOOM),
      duration: 800,
    });
  }
}

// --- viewport ----------------------------------------------------------------------------------------

/**
 * Tell the gateway what we look at. Throttled with a trailing send rather than debounced: while following,
 * the map eases every tick and a pure debounce would never fire.
 */
function sendViewport({ force = false } = {}) {
  if (!map) return;
  const bbox = paddedBbox(visibleBbox(map));
  const key = bbox.join(",");
  if (!force && key === lastViewportSent) return;
  if (connection.send(viewportMessage(bbox))) lastViewportSent = key;
}

function scheduleViewport() {
  if (viewportTimer !== null) return;
  viewportTimer = setTimeout(() => {
    viewportTimer = null;
    sendViewport();
  }, VIEWPORT_DELAY_MS);
}

// --- start-up ----------------------------------------------------------------------------------------

function wireMapEvents() {
  map.on("moveend", scheduleViewport);
  map.on("dragstart", (event) => {
    // Dragging the map while following means the dispatcher wants to look elsewhere.
    if (event.originalEvent && selection !== null && selection.following) setFollowing(false);
  });
  map.on("click", (event) => {
    if (playback !== null && playback.active()) return; // the live markers are hidden meanwhile
    const partnerId = courierAt(map, store, event.point);
    if (partnerId !== null) select(partnerId);
  });
  let hoverScheduled = false;
  let lastPoint = null;
  map.on("mousemove", (event) => {
    lastPoint = event.point;
    if (hoverScheduled) return;
    hoverScheduled = true;
    requestAnimationFrame(() => {
      hoverScheduled = false;
      if (!mapReady) return;
      map.getCanvas().style.cursor = courierAt(map, store, lastPoint) !== null ? "pointer" : "";
    });
  });
}

/** An event in the feed was clicked: fly to its courier (and show it in the panel). */
function flyToCourier(partnerId) {
  if (selection !== null && selection.id === partnerId && selection.courier) {
    map.flyTo({ center: [selection.courier.lon, selection.courier.lat], zoom: Math.max(map.getZoom(), 15) });
  } else {
    select(partnerId, { flyTo: true });
  }
}

function wireUiEvents() {
  ui.closeButton.addEventListener("click", () => deselect());
  ui.followButton.addEventListener("click", () => setFollowing(!(selection && selection.following)));
  ui.reconnectButton.addEventListener("click", async () => {
    // After a refused token the button asks for one; otherwise it skips the backoff wait.
    if (connection.status().state === "refused" && !(await access.ask(null))) return;
    connection.reconnectNow();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selection !== null) {
      event.preventDefault();
      deselect();
    }
  });
  ui.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const partnerId = ui.searchInput.value.trim();
    if (partnerId) select(partnerId, { flyTo: true });
  });
  // Ticking "last seen" and the reconnect countdown.
  setInterval(() => {
    const now = Date.now();
    renderConnection(ui, connection.status(), now);
    if (selection !== null) renderPanel(ui, selection, now);
  }, 500);
}

function exposeTestHooks() {
  window.__tracker = {
    courierCount: () => store.entries.size,
    courier: (partnerId) => getCourier(store, partnerId),
    renderedCount: () => renderedCount,
    get connection() {
      return connection.status().state;
    },
    frameApplyMs,
    /** The History control's hooks (playback/controller.js), or null before the map is ready. */
    playback: () => (playback ? playback.testHooks : null),
    /** Apply a frame object as if it had just been received and push it to the map now; returns ms taken. */
    applyFrame(frame) {
      const startedAt = performance.now();
      if (handleFrame(frame, Date.now())) {
        pendingApplyMs += performance.now() - startedAt;
        return flush() ?? performance.now() - startedAt;
      }
      return performance.now() - startedAt;
    },
    get lastLatencyMs() {
      return lastLatencyMs;
    },
    get ready() {
      return mapReady;
    },
    get smoothMotion() {
      return smoothMotion;
    },
    /** Where a courier's marker is drawn now ([lon, lat]; mid-glide, not yet its newest fix), or null. */
    drawnPosition(partnerId) {
      const entry = store.entries.get(partnerId);
      return entry ? [entry.coordinates[0], entry.coordinates[1]] : null;
    },
    /** The local basemap: whether its source has loaded the tiles in view, and street features drawn. */
    basemap() {
      if (basemap === null || !mapReady) return null;
      return {
        loaded: map.isSourceLoaded(basemap.source),
        roads: map.queryRenderedFeatures({ layers: [...basemap.roadLayers] }).length,
      };
    },
    /** Drop the WebSocket as a network failure would (reconnect follows with backoff). */
    dropConnection: () => connection.drop(),
    select: (partnerId) => select(partnerId),
    selectedId: () => (selection ? selection.id : null),
    following: () => Boolean(selection && selection.following),
    /** Where a courier is drawn, in viewport CSS pixels (for clicking it in browser tests), or null. */
    screenPosition(partnerId) {
      const courier = getCourier(store, partnerId);
      if (!courier || !mapReady) return null;
      const point = map.project([courier.lon, courier.lat]);
      const rect = map.getContainer().getBoundingClientRect();
      return { x: rect.left + point.x, y: rect.top + point.y };
    },
  };
}

async function start() {
  renderLegend(ui);
  const [config, serviceArea] = await Promise.all([fetchJson("api/config"), fetchJson("api/service-area")]);
  if (!serviceArea.ok) showToast(ui, "Could not load the service area; showing couriers only.");
  const tileUrl = config.ok && config.body ? config.body.tile_url : null;
  const basemapUrl = config.ok && config.body ? config.body.basemap_url : null;
  if (basemapUrl) {
    try {
      basemap = await loadBasemap(basemapUrl);
    } catch (error) {
      console.error(error);
      showToast(ui, "Could not load the basemap; showing the map without streets.");
    }
  }

  const created = createMap(document.getElementById("map"), {
    serviceArea: serviceArea.ok ? serviceArea.body : null,
    tileUrl,
    basemap,
  });
  map = created.map;
  wireMapEvents();

  // With a viewer token required, ask before the first connection rather than after a refusal.
  const body = config.ok && config.body ? config.body : {};
  if (body.viewer_token_required && !access.token()) await access.ask(null);
  let offeredToken = null;
  connection = createConnection({
    url: webSocketUrl(location.href, "ws"),
    protocols: () => {
      offeredToken = access.token();
      return webSocketProtocols(body.ws_subprotocol, offeredToken);
    },
    isRefusal: (code, reason) => code === WS_1008_POLICY_VIOLATION && reason === body.ws_token_refused,
    onRefused: async () => {
      if (await access.refused(offeredToken)) connection.reconnectNow();
    },
    onOpen: () => {
      lastViewportSent = undefined;
      sendViewport({ force: true });
      if (selection !== null && selection.following) connection.send(followMessage(selection.id));
    },
    onMessage,
    onStateChange: (status) => renderConnection(ui, status, Date.now()),
  });
  exposeTestHooks();
  wireUiEvents();
  // A refused token is asked for by the map's own requests and /ws; the feed only says so.
  eventsFeed = wireEventsFeed(document, {
    fetchJson: (path) => fetchJson(path, { maxAsks: 0 }),
    onPick: flyToCourier,
  });
  const motionSwitch = document.querySelector('[data-field="smooth-motion"]');
  motionSwitch.checked = smoothMotion;
  motionSwitch.addEventListener("change", () => setSmoothMotion(motionSwitch.checked));

  await created.ready;
  mapReady = true;
  playback = createPlayback({
    map,
    root: document.querySelector(".playback"),
    toggle: document.querySelector('[data-action="history"]'),
    courierButton: document.querySelector('[data-action="history-courier"]'),
    fetchJson,
    selectedId: () => (selection ? selection.id : null),
    onLive: () => {
      store.dirty = true;
      scheduleFlush();
    },
  });
  setZoneCounts(map, lastZoneCounts);
  store.dirty = true;
  flush();
  if (selection !== null) renderSelection();
}

start().catch((error) => {
  console.error(error);
  showToast(ui, `The map failed to start: ${error.message}`, 60_000);
});
