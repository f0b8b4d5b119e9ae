// Header counters, connection banner, legend, side panel and toast. Plain DOM; every render function writes
// text only when it changed, because the header is refreshed several times a second all day long.

import { STATUS_COLOURS, VEHICLE_RADII } from "./style.js";
import * as format from "./format.js";

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function field(root, name) {
  const element = root.querySelector(`[data-field="${name}"]`);
  if (element === null) throw new Error(`index.html has no element with data-field="${name}"`);
  return element;
}

/** Look up every element the page writes to, once. */
export function bindUi(doc) {
  const panel = doc.querySelector(".panel");
  return {
    doc,
    counters: {
      online: field(doc, "online"),
      idle: field(doc, "idle"),
      stale: field(doc, "stale"),
      offline: field(doc, "offline"),
      inView: field(doc, "in-view"),
      pingsPerS: field(doc, "pings-per-s"),
      accepted: field(doc, "accepted"),
      rejected: field(doc, "rejected"),
      latency: field(doc, "latency"),
    },
    connection: doc.querySelector(".connection"),
    stage: doc.querySelector(".stage"),
    connectionText: field(doc, "connection"),
    banner: doc.querySelector(".banner"),
    bannerText: field(doc, "banner-text"),
    bannerDetail: field(doc, "banner-detail"),
    reconnectButton: doc.querySelector('[data-action="reconnect"]'),
    viewerDialog: field(doc, "viewer-dialog"),
    viewerInput: field(doc, "viewer-input"),
    viewerError: field(doc, "viewer-error"),
    legend: doc.querySelector(".legend-items"),
    panel,
    panelFields: {
      id: field(panel, "panel-id"),
      status: field(panel, "panel-status"),
      vehicle: field(panel, "panel-vehicle"),
      speed: field(panel, "panel-speed"),
      heading: field(panel, "panel-heading"),
      lastSeen: field(panel, "panel-last-seen"),
      order: field(panel, "panel-order"),
      position: field(panel, "panel-position"),
      trail: field(panel, "panel-trail"),
      note: field(panel, "panel-note"),
    },
    headingArrow: panel.querySelector(".heading-arrow"),
    followButton: panel.querySelector('[data-action="follow"]'),
    closeButton: panel.querySelector('[data-action="close"]'),
    searchForm: doc.querySelector(".search"),
    searchInput: doc.querySelector(".search input"),
    toast: doc.querySelector(".toast"),
  };
}

export function renderLegend(ui) {
  const doc = ui.doc;
  const heading = (text) => {
    const element = doc.createElement("li");
    element.className = "legend-heading";
    element.textContent = text;
    return element;
  };
  const items = [heading("Status")];
  for (const [status, colour] of Object.entries(STATUS_COLOURS)) {
    const item = doc.createElement("li");
    const swatch = doc.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    item.append(swatch, status);
    items.push(item);
  }
  items.push(heading("Vehicle (dot size)"));
  for (const [vehicle, radius] of Object.entries(VEHICLE_RADII)) {
    const item = doc.createElement("li");
    const swatch = doc.createElement("span");
    swatch.className = `swatch vehicle${vehicle === "car" ? " car" : ""}`;
    swatch.style.width = swatch.style.height = `${Math.round(radius * 2.4)}px`;
    item.append(swatch, vehicle);
    items.push(item);
  }
  ui.legend.replaceChildren(...items);
}

/** A `stats` frame: server-wide counts. */
export function renderStats(ui, stats) {
  const { counters } = ui;
  setText(counters.online, format.count(stats.online));
  setText(counters.idle, format.count(stats.idle));
  setText(counters.stale, format.count(stats.stale));
  setText(counters.offline, format.count(stats.offline));
  setText(counters.pingsPerS, format.rate(stats.pings_per_s));
  setText(counters.accepted, format.count(stats.accepted_total));
  setText(counters.rejected, format.count(stats.rejected_total));
}

export function renderFrameInfo(ui, { inView, latencyMs }) {
  setText(ui.counters.inView, format.count(inView));
  setText(ui.counters.latency, format.latency(latencyMs));
  const slow = Number.isFinite(latencyMs) && latencyMs > 1000;
  ui.counters.latency.classList.toggle("warn", slow);
}

/** Connection pill in the header and, while closed, the "reconnecting in N s" banner (or, when the gateway
 * refused the viewer token, a button to enter one). */
export function renderConnection(ui, status, nowMs) {
  ui.connection.dataset.state = status.state;
  ui.stage.dataset.connection = status.state;
  setText(ui.reconnectButton, status.state === "refused" ? "Enter token" : "Reconnect now");
  if (status.state === "refused") {
    setText(ui.connectionText, "Token needed");
    ui.banner.hidden = false;
    setText(ui.bannerText, "This map needs a viewer token");
    setText(ui.bannerDetail, "");
    return;
  }
  if (status.state === "open") {
    setText(ui.connectionText, "Live");
    ui.banner.hidden = true;
    return;
  }
  if (status.state === "connecting") {
    setText(ui.connectionText, status.attempt > 0 ? "Reconnecting…" : "Connecting…");
    if (status.attempt > 0) {
      ui.banner.hidden = false;
      setText(ui.bannerText, "Disconnected — reconnecting now…");
    }
    return;
  }
  setText(ui.connectionText, "Offline");
  ui.banner.hidden = false;
  if (status.retryAtMs === null) {
    setText(ui.bannerText, "Disconnected");
  } else {
    const seconds = Math.max(0, Math.ceil((status.retryAtMs - nowMs) / 1000));
    setText(ui.bannerText, `Disconnected — reconnecting in ${seconds} s`);
  }
  setText(ui.bannerDetail, status.lastError ? `(${status.lastError})` : "");
}

export function showPanel(ui) {
  ui.panel.hidden = false;
  ui.closeButton.focus({ preventScroll: true });
}

export function hidePanel(ui) {
  ui.panel.hidden = true;
}

/**
 * selection: { id, courier (last known, may be null while loading), following, inView, trailPoints,
 * trailLoaded }.
 */
export function renderPanel(ui, selection, nowMs) {
  const f = ui.panelFields;
  const courier = selection.courier;
  setText(f.id, selection.id);
  const status = courier ? courier.status || "unknown" : "loading…";
  setText(f.status, status);
  f.status.dataset.status = courier ? courier.status || "" : "";
  setText(f.vehicle, courier && courier.vehicle ? courier.vehicle : "—");
  setText(f.speed, courier ? format.speedKmh(courier.speed) : "—");
  setText(f.heading, courier ? format.heading(courier.heading) : "—");
  const hasHeading = courier && Number.isFinite(courier.heading);
  ui.headingArrow.hidden = !hasHeading;
  if (hasHeading) ui.headingArrow.style.transform = `rotate(${courier.heading}deg)`;
  setText(f.lastSeen, courier ? format.ago(courier.ts, nowMs) : "—");
  setText(f.order, courier && courier.order_id ? courier.order_id : "—");
  setText(f.position, courier ? format.coordinates(courier.lat, courier.lon) : "—");
  setText(f.trail, selection.trailLoaded ? `${selection.trailPoints} points` : "loading…");
  let note = "";
  if (selection.error) note = selection.error;
  else if (courier && !selection.inView && !selection.following) note = "Outside the current view: last known position.";
  setText(f.note, note);
  f.note.hidden = note === "";
  setText(ui.followButton, selection.following ? "Stop following" : "Follow");
  ui.followButton.setAttribute("aria-pressed", String(selection.following));
}

let toastTimer = null;

export function showToast(ui, message, durationMs = 6000) {
  setText(ui.toast, message);
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, durationMs);
}
