// Wiring of the customer's tracking page (/track/<token>): one order, its courier, nothing else.
//
// Start-up, cheapest first: this small module asks GET /api/track/<token> at once and fills the card (state,
// ETA, distance) from the answer; MapLibre, most of the page's bytes, is a chunk of its own (map.js) fetched
// at the same time and used once the order is known, so a phone shows where the order is before the map has
// arrived. (A link refused when the page is asked for gets the gateway's own short refusal page instead.)
// Then the WebSocket /ws/track/<token> (connection.js, the live map's reconnecting socket) brings `order`
// and `courier` frames, applied by the pure rules of state.js; the marker glides to each fix (motion.js).
// A refusal (HTTP 403/410, close 1008) or delivery (close 1000 "delivered") ends it: see outcome.js.

import "./track.css";
import { backoffDelayMs } from "../protocol.js";
import { arrived, glideTo, positionAt } from "../motion.js";
import { ORDER_STATES, applyFrame, applySnapshot, createTrack, delivered, stateRank } from "./state.js";
import { ETA_EXPLANATION, cardModel } from "./format.js";
import { trackLink } from "./link.js";
import { httpOutcome, refusalMessage } from "./outcome.js";
import { openTrackSocket } from "./socket.js";
import { boundsOf, needsFit, pointsToFit } from "./view.js";

const FETCH_TIMEOUT_MS = 8_000;

const ui = bind(document);
const link = trackLink(location.href);
const track = createTrack();
const reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

let view = null; // map.js's createTrackMap, once loaded
let mapReady = false;
let connection = null;
let connectionView = { state: "connecting", retryAtMs: null };
let ended = null; // null | "delivered" | "refused"
let glide; // motion.js glide of the courier marker (undefined: none drawn)
let animationScheduled = false;
let fittedState = null;
let userMovedAt = -Infinity; // performance.now() when the customer last moved the map

function bind(root) {
  const field = (name) => root.querySelector(`[data-field="${name}"]`);
  return {
    stage: root.querySelector(".track-stage"),
    mapElement: root.getElementById("map"),
    card: root.querySelector(".track-card"),
    steps: [...root.querySelectorAll(".track-steps [data-state]")],
    headline: field("headline"),
    detail: field("detail"),
    etaBlock: field("eta-block"),
    eta: field("eta"),
    etaTarget: field("eta-target"),
    etaExplain: field("eta-explain"),
    distance: field("distance"),
    age: field("age"),
    coarse: field("coarse"),
    connection: field("connection"),
    refused: root.querySelector(".track-refused"),
    refusedTitle: field("refused-title"),
    refusedDetail: field("refused-detail"),
  };
}

function setText(element, text) {
  const value = text ?? "";
  if (element.textContent !== value) element.textContent = value;
}

// --- the card -----------------------------------------------------------------------------------------

function renderCard() {
  if (ended === "refused") return; // the refusal is all the page shows now
  const model = cardModel(track, Date.now());
  document.body.dataset.state = model.state ?? "loading";
  setText(ui.headline, model.headline);
  setText(ui.detail, model.detail);
  ui.etaBlock.hidden = model.eta === null;
  setText(ui.eta, model.eta);
  setText(ui.etaTarget, model.etaTarget);
  ui.distance.parentElement.hidden = model.distance === null;
  setText(ui.distance, model.distance);
  ui.age.parentElement.hidden = model.age === null;
  setText(ui.age, model.age);
  ui.coarse.hidden = !model.coarse;
  const rank = stateRank(model.state);
  for (const step of ui.steps) {
    const stepRank = ORDER_STATES.indexOf(step.dataset.state);
    step.classList.toggle("done", stepRank < rank || model.state === "delivered");
    step.classList.toggle("current", stepRank === rank);
    if (stepRank === rank) step.setAttribute("aria-current", "step");
    else step.removeAttribute("aria-current");
  }
  renderConnection();
}

function renderConnection() {
  let text = "";
  let state = connectionView.state;
  if (ended === "delivered") state = "ended";
  else if (state === "open") text = "Live";
  else if (state === "closed") {
    const seconds = connectionView.retryAtMs ? Math.max(0, Math.ceil((connectionView.retryAtMs - Date.now()) / 1000)) : 0;
    text = seconds > 0 ? `Reconnecting in ${seconds} s…` : "Reconnecting…";
    state = "reconnecting";
  } else if (state === "connecting") text = connection === null ? "Connecting…" : "Reconnecting…";
  ui.connection.dataset.state = state;
  ui.connection.hidden = text === "";
  setText(ui.connection, text);
}

function cardHeight() {
  return ui.card.getBoundingClientRect().height;
}

// --- the map ------------------------------------------------------------------------------------------

/** The courier marker where it is drawn now, mid-glide, as [lon, lat]; null when there is none. */
function drawnCourier() {
  return glide === undefined ? null : positionAt(glide, performance.now());
}

/** Where the courier is headed, [lon, lat]: the pickup point until picked up, then the drop-off. */
function target() {
  const order = track.order;
  const point = order.state === "to_pickup" && order.pickup !== null ? order.pickup : order.dropoff;
  return [point.lon, point.lat];
}

/** Draw the courier marker where its glide is at `nowMs`. */
function drawCourier(nowMs) {
  view.setCourier(positionAt(glide, nowMs), track.courier.coarse);
}

function renderMap({ courierChanged }) {
  if (view === null) return;
  const order = track.order;
  view.setDropoff([order.dropoff.lon, order.dropoff.lat]);
  view.setPickup(order.pickup && order.state === "to_pickup" ? [order.pickup.lon, order.pickup.lat] : null);
  const courier = track.courier;
  if (courier === null) {
    glide = undefined;
    view.setCourier(null);
    view.setLine(null, null);
  } else {
    if (courierChanged || glide === undefined) {
      glide = glideTo(reducedMotion ? undefined : glide, courier.lon, courier.lat, courier.ts, performance.now());
      scheduleAnimation();
    }
    drawCourier(performance.now());
    // The straight line the distance and the ETA are measured on: from the newest fix (where the marker is
    // gliding to) to the target, so it never trails behind the marker.
    view.setLine([courier.lon, courier.lat], target());
  }
  if (mapReady) fitIfNeeded();
}

function fitIfNeeded() {
  const points = pointsToFit(track, track.courier ? [track.courier.lon, track.courier.lat] : null);
  const visible = fittedState === null ? null : view.visibleBounds(cardHeight());
  if (!needsFit(fittedState, track, points, visible, performance.now() - userMovedAt)) return;
  const animate = fittedState !== null && !reducedMotion;
  fittedState = track.order.state;
  view.fit(boundsOf(points), cardHeight(), animate);
}

function scheduleAnimation() {
  if (animationScheduled) return;
  animationScheduled = true;
  requestAnimationFrame(animate);
}

function animate() {
  animationScheduled = false;
  if (view === null || glide === undefined || track.courier === null) return;
  const now = performance.now();
  drawCourier(now);
  if (!arrived(glide, now)) scheduleAnimation();
}

async function startMap(mapModule, basemapUrl) {
  const { createTrackMap, loadBasemap, loadStylesheet } = await mapModule;
  if (ended === "refused") return;
  await loadStylesheet().catch((error) => console.error(error));
  let basemap = null;
  if (basemapUrl) {
    try {
      basemap = await loadBasemap(basemapUrl, link.rootUrl);
    } catch (error) {
      console.error("could not load the basemap:", error);
    }
  }
  if (ended === "refused") return;
  const { dropoff } = track.order;
  view = createTrackMap(ui.mapElement, { center: [dropoff.lon, dropoff.lat], basemap });
  view.onUserMove(() => {
    userMovedAt = performance.now();
  });
  renderMap({ courierChanged: true });
  await view.ready;
  mapReady = true;
  fitIfNeeded();
}

// --- data ---------------------------------------------------------------------------------------------

function onChange(changed) {
  if (!changed.order && !changed.courier) return;
  if (delivered(track)) finish("delivered");
  renderCard();
  renderMap({ courierChanged: changed.courier });
}

function onMessage(text, receivedAtMs) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    console.warn("dropping a frame that is not JSON");
    return;
  }
  onChange(applyFrame(track, frame, receivedAtMs));
}

/** Delivered or refused: no more data, no more position. */
function finish(how) {
  if (ended !== null) return;
  ended = how;
  if (connection !== null) connection.stop();
  if (how === "refused") {
    track.order = null;
    track.courier = null;
    glide = undefined;
    if (view !== null) view.remove();
    view = null;
  }
  renderConnection();
}

function showRefusal(reason) {
  finish("refused");
  const message = refusalMessage(reason);
  setText(ui.refusedTitle, message.title);
  setText(ui.refusedDetail, message.detail);
  document.body.dataset.state = "refused";
  ui.stage.hidden = true;
  ui.refused.hidden = false;
}

async function fetchTrack() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(link.apiUrl, { headers: { accept: "application/json" }, signal: controller.signal });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { status: response.status, body };
  } catch {
    return { status: 0, body: null };
  } finally {
    clearTimeout(timer);
  }
}

/** GET /api/track/<token> until it answers (backoff between tries); null when the link was refused. */
async function firstAnswer() {
  for (let attempt = 0; ; attempt += 1) {
    const { status, body } = await fetchTrack();
    const outcome = httpOutcome(status, body);
    if (outcome.kind === "ok" && body !== null) return body;
    if (outcome.kind === "refused") {
      showRefusal(outcome.reason);
      return null;
    }
    const delayMs = backoffDelayMs(attempt);
    connectionView = { state: "closed", retryAtMs: Date.now() + delayMs };
    renderConnection();
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

function connect() {
  connection = openTrackSocket({
    url: link.wsUrl,
    onMessage,
    onEnd: (outcome) => {
      if (outcome.kind === "refused") showRefusal(outcome.reason);
      else if (!delivered(track)) {
        // Closed "delivered" without the order frame saying so (it should not happen): delivered all the same.
        onChange(applyFrame(track, { ...rawOrder(), type: "order", state: "delivered" }, Date.now()));
      }
    },
    onStateChange: (status) => {
      connectionView = status;
      renderConnection();
    },
  });
}

/** The held order as the contract's object (to apply a state to it). */
function rawOrder() {
  const order = track.order;
  return { state: order.state, dropoff: order.dropoff, pickup: order.pickup, expires_at: order.expiresAt };
}

function exposeTestHooks() {
  window.__track = {
    get ready() {
      return mapReady;
    },
    get ended() {
      return ended;
    },
    state: () => (track.order ? track.order.state : null),
    courier: () => (track.courier ? { ...track.courier } : null),
    /** Where the courier marker is drawn now ([lon, lat]), or null when there is no marker. */
    drawnPosition: () => (track.courier === null ? null : drawnCourier()),
    connection: () => (connection ? connection.status().state : null),
    screenPosition: (lngLat) => (view && mapReady ? view.screenPosition(lngLat) : null),
    /** Drop the WebSocket as a network failure would (reconnect follows with backoff). */
    dropConnection: () => connection && connection.drop(),
  };
}

async function start() {
  setText(ui.etaExplain, ETA_EXPLANATION);
  exposeTestHooks();
  renderCard();
  if (link === null) {
    showRefusal("invalid tracking link");
    return;
  }
  const mapModule = import("./map.js");
  mapModule.catch(() => {}); // a failure is reported where it is awaited
  const body = await firstAnswer();
  if (body === null) return;
  onChange(applySnapshot(track, body, Date.now()));
  if (track.order === null) {
    showRefusal("");
    return;
  }
  renderCard();
  if (!delivered(track)) connect();
  setInterval(renderCard, 1000); // the fix's age and the reconnect countdown
  await startMap(mapModule, typeof body.basemap_url === "string" ? body.basemap_url : null);
}

start().catch((error) => {
  console.error(error);
  setText(ui.detail, "The page failed to start. Reload to try again.");
});
