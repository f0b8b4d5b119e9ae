// Everything the review page draws outside the map and the charts: header counters, the table, the detail
// panel, bulk results and the toast. Plain DOM; every string that came from the server goes in through
// textContent, text nodes or setAttribute (title/aria-label), never through an HTML parser.

import * as format from "../format.js";
export { showToast } from "../ui.js";
import { STATUSES, reasonColour, reasonLabel } from "./reasons.js";
import { canReplayAsIs, headerRows, jumpOf, payloadNote, prettyPayload, truncate } from "./payload.js";
import { isSelectable } from "./selection.js";
import { fullTime, shortTime } from "./time.js";

export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function field(root, name) {
  const element = root.querySelector(`[data-field="${name}"]`);
  if (element === null) throw new Error(`dlq.html has no element with data-field="${name}"`);
  return element;
}

function action(root, name) {
  const element = root.querySelector(`[data-action="${name}"]`);
  if (element === null) throw new Error(`dlq.html has no element with data-action="${name}"`);
  return element;
}

/** Look up every element the page writes to or listens on, once. */
export function bindUi(doc) {
  const names = [
    "total", "status-new", "status-replayed", "status-discarded", "last-hour", "auto-refresh", "updated",
    "reason-chart", "sparkline", "sparkline-caption", "top-partners", "bulkbar", "selected-count", "bulk-results", "bulk-title",
    "bulk-list", "select-all", "rows", "table-empty", "showing", "map-note", "detail-empty", "detail", "detail-id",
    "detail-reason", "detail-status", "detail-text", "detail-facts", "action-message", "editor", "edit-payload",
    "edit-error", "detail-headers", "payload-kind", "payload-note", "detail-payload", "token-dialog", "token-error",
    "token-input",
  ];
  const fields = {};
  for (const name of names) fields[name] = field(doc, name);
  const actions = {};
  for (const name of [
    "clear-filters", "bulk-replay", "bulk-discard", "clear-selection", "close-results", "load-more", "close-detail",
    "replay", "edit", "discard", "send-edited", "cancel-edit",
  ]) {
    actions[name] = action(doc, name);
  }
  return {
    doc,
    fields,
    actions,
    filters: doc.querySelector("form.filters"),
    connection: doc.querySelector(".connection"),
    toast: doc.querySelector(".toast"),
    rowCache: new Map(), // entry id -> { tr, checkbox, cells, entry }
  };
}

// --- header ------------------------------------------------------------------------------------------

export function renderCounters(ui, stats, lastHour) {
  const f = ui.fields;
  setText(f.total, format.count(stats ? stats.total : NaN));
  const byStatus = (stats && stats.by_status) || {};
  setText(f["status-new"], format.count(byStatus.new ?? (stats ? 0 : NaN)));
  setText(f["status-replayed"], format.count(byStatus.replayed ?? (stats ? 0 : NaN)));
  setText(f["status-discarded"], format.count(byStatus.discarded ?? (stats ? 0 : NaN)));
  setText(f["last-hour"], format.count(lastHour));
}

/** The pill in the header: "Updated 14:03:07" or what went wrong. */
export function renderFreshness(ui, { ok, atMs, error }) {
  ui.connection.dataset.state = ok ? "open" : "closed";
  setText(ui.fields.updated, ok ? `Updated ${shortTime(atMs, atMs)}` : `Not updated: ${error}`);
}

/** The partners with the most rejects (stats.by_partner, [[id, n], ...]) as buttons that filter on them. */
export function renderTopPartners(ui, byPartner, { limit = 5, active = "", onPick }) {
  const doc = ui.doc;
  const items = [];
  for (const pair of (Array.isArray(byPartner) ? byPartner : []).slice(0, limit)) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string") continue;
    const [partnerId, n] = pair;
    const li = doc.createElement("li");
    const button = doc.createElement("button");
    button.type = "button";
    button.className = "link";
    button.classList.toggle("active", partnerId === active);
    button.textContent = partnerId;
    button.title = partnerId === active ? "Clear the partner filter" : `Show only ${partnerId}`;
    button.addEventListener("click", () => onPick(partnerId));
    const value = doc.createElement("span");
    value.className = "value";
    value.textContent = format.count(n);
    li.append(button, value);
    items.push(li);
  }
  if (items.length === 0) {
    const li = doc.createElement("li");
    li.className = "muted";
    li.textContent = "—";
    items.push(li);
  }
  ui.fields["top-partners"].replaceChildren(...items);
}

// --- filters -----------------------------------------------------------------------------------------

/** Fill the reason <select> once: known reasons plus any the server reports that this page does not know. */
export function renderReasonOptions(ui, reasons) {
  const select = ui.filters.elements.reason;
  const existing = new Set([...select.options].map((option) => option.value));
  for (const { code, label } of reasons) {
    if (existing.has(code)) continue;
    const option = ui.doc.createElement("option");
    option.value = code;
    option.textContent = label;
    select.append(option);
    existing.add(code);
  }
}

// --- table -------------------------------------------------------------------------------------------

function chip(doc, reason) {
  const element = doc.createElement("span");
  element.className = "chip";
  element.style.setProperty("--chip", reasonColour(reason));
  element.textContent = reasonLabel(reason);
  return element;
}

function fillStatus(element, entry) {
  const status = STATUSES.includes(entry.status) ? entry.status : "";
  element.dataset.review = status;
  const count = Number.isFinite(entry.replay_count) && entry.replay_count > 0 ? ` ×${entry.replay_count}` : "";
  setText(element, `${typeof entry.status === "string" ? entry.status : "?"}${count}`);
}

function createRow(ui, entry, handlers) {
  const doc = ui.doc;
  const tr = doc.createElement("tr");
  tr.tabIndex = 0;
  const cell = (className) => {
    const td = doc.createElement("td");
    td.className = className;
    tr.append(td);
    return td;
  };
  const checkCell = cell("col-check");
  const checkbox = doc.createElement("input");
  checkbox.type = "checkbox";
  checkCell.append(checkbox);
  const cells = {
    time: cell("col-time"),
    reason: cell("col-reason"),
    partner: cell("col-partner"),
    detail: cell("col-detail"),
    status: cell("col-status"),
  };
  const statusBadge = doc.createElement("span");
  statusBadge.className = "badge";
  cells.status.append(statusBadge);
  const row = { tr, checkbox, cells, statusBadge, entry: null };
  checkbox.addEventListener("click", (event) => event.stopPropagation());
  checkbox.addEventListener("change", () => handlers.onTick(row.entry.id, checkbox.checked));
  tr.addEventListener("click", () => handlers.onOpen(row.entry.id));
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === tr) {
      event.preventDefault();
      handlers.onOpen(row.entry.id);
    }
  });
  return row;
}

function updateRow(row, entry, nowMs) {
  const previous = row.entry;
  row.entry = entry;
  if (previous === entry) return;
  const { cells } = row;
  row.tr.dataset.id = entry.id; // dataset is a DOM property: the id is never parsed as markup
  setText(cells.time, shortTime(entry.rejected_at, nowMs));
  cells.time.title = fullTime(entry.rejected_at);
  if (!previous || previous.reason !== entry.reason) cells.reason.replaceChildren(chip(row.tr.ownerDocument, entry.reason));
  const partner = typeof entry.partner_id === "string" && entry.partner_id !== "" ? entry.partner_id : "—";
  setText(cells.partner, partner);
  cells.partner.classList.toggle("muted", partner === "—");
  const detail = typeof entry.detail === "string" ? entry.detail : "";
  setText(cells.detail, truncate(detail, 90));
  cells.detail.title = detail;
  fillStatus(row.statusBadge, entry);
  row.checkbox.disabled = !isSelectable(entry);
  row.checkbox.setAttribute("aria-label", `Select ${entry.id}`);
}

/**
 * Draw the rows of `items` in order, reusing each entry's <tr> (so a refresh does not steal focus or reset a
 * hover), marking the open entry and the ticked ones.
 */
export function renderRows(ui, items, { openId, ticked, nowMs, handlers }) {
  const tbody = ui.fields.rows;
  const keep = new Set();
  items.forEach((entry, index) => {
    let row = ui.rowCache.get(entry.id);
    if (row === undefined) {
      row = createRow(ui, entry, handlers);
      ui.rowCache.set(entry.id, row);
    }
    keep.add(entry.id);
    updateRow(row, entry, nowMs);
    row.checkbox.checked = ticked.has(entry.id);
    row.tr.classList.toggle("open", entry.id === openId);
    row.tr.classList.toggle("ticked", ticked.has(entry.id));
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] ?? null);
  });
  for (const [id, row] of ui.rowCache) {
    if (keep.has(id)) continue;
    row.tr.remove();
    ui.rowCache.delete(id);
  }
  ui.fields["table-empty"].hidden = items.length > 0;
}

export function renderFooter(ui, list, loading) {
  const shown = list.items.length;
  const total = Number.isFinite(list.total) ? ` of ${format.count(list.total)}` : "";
  setText(ui.fields.showing, loading && shown === 0 ? "Loading…" : `Showing ${format.count(shown)}${total}`);
  const more = ui.actions["load-more"];
  more.hidden = list.nextCursor === null;
  more.disabled = loading;
  setText(more, loading ? "Loading…" : "Load more");
}

export function renderSelectionBar(ui, ticked, headerState) {
  const n = ticked.size;
  setText(ui.fields["selected-count"], n === 0 ? "Tick rows in status “new” to act on several at once." : `${format.count(n)} selected`);
  ui.actions["bulk-replay"].disabled = n === 0;
  ui.actions["bulk-discard"].disabled = n === 0;
  ui.actions["clear-selection"].disabled = n === 0;
  setText(ui.actions["bulk-replay"], n === 0 ? "Replay selected" : `Replay ${format.count(n)} selected`);
  setText(ui.actions["bulk-discard"], n === 0 ? "Discard selected" : `Discard ${format.count(n)} selected`);
  const all = ui.fields["select-all"];
  all.checked = headerState === "all";
  all.indeterminate = headerState === "some";
  ui.fields.bulkbar.classList.toggle("active", n > 0);
}

/** outcome: stats-free { succeeded: [ids], failed: [{id, error}] } of a bulk action, or { error } if it failed whole. */
export function renderBulkResults(ui, verb, outcome) {
  const doc = ui.doc;
  const f = ui.fields;
  const items = [];
  if (outcome.error) {
    setText(f["bulk-title"], `${verb} failed`);
    const li = doc.createElement("li");
    li.className = "failed";
    li.textContent = outcome.error;
    items.push(li);
  } else {
    const failed = outcome.failed.length;
    setText(
      f["bulk-title"],
      `${verb}: ${format.count(outcome.succeeded.length)} done${failed ? `, ${format.count(failed)} failed` : ""}`,
    );
    for (const id of outcome.succeeded) {
      const li = doc.createElement("li");
      li.className = "ok";
      const code = doc.createElement("code");
      code.textContent = id;
      li.append("✓ ", code);
      items.push(li);
    }
    for (const { id, error } of outcome.failed) {
      const li = doc.createElement("li");
      li.className = "failed";
      const code = doc.createElement("code");
      code.textContent = id;
      li.append("✕ ", code, ` — ${error}`);
      items.push(li);
    }
  }
  f["bulk-list"].replaceChildren(...items);
  f["bulk-results"].hidden = false;
}

// --- detail ------------------------------------------------------------------------------------------

function fact(doc, label, value, className = "") {
  const wrapper = doc.createElement("div");
  const dt = doc.createElement("dt");
  dt.textContent = label;
  const dd = doc.createElement("dd");
  if (className) dd.className = className;
  dd.textContent = value;
  wrapper.append(dt, dd);
  return wrapper;
}

function distance(metres) {
  return metres >= 1000 ? `${(metres / 1000).toFixed(2)} km` : `${Math.round(metres)} m`;
}

function facts(doc, entry, nowMs) {
  const rows = [];
  rows.push(fact(doc, "Partner", typeof entry.partner_id === "string" ? entry.partner_id : "—", "mono"));
  rows.push(fact(doc, "Rejected", `${fullTime(entry.rejected_at)} (${format.ago(entry.rejected_at, nowMs)})`));
  const original = entry.original || {};
  rows.push(
    fact(doc, "Original record", `${original.topic ?? "?"} · partition ${original.partition ?? "?"} · offset ${original.offset ?? "?"}`, "mono"),
  );
  rows.push(fact(doc, "Record time", fullTime(original.timestamp)));
  if ("key" in entry) rows.push(fact(doc, "Key", entry.key === null ? "(none)" : String(entry.key), "mono"));
  rows.push(fact(doc, "Position", format.coordinates(entry.lat, entry.lon), "mono"));
  if (entry.last_fix) {
    const fix = entry.last_fix;
    rows.push(fact(doc, "Last accepted fix", `${format.coordinates(fix.lat, fix.lon)} at ${fullTime(fix.ts)}`, "mono"));
  }
  const jump = jumpOf(entry);
  if (jump !== null) {
    let text = distance(jump.metres);
    if (jump.seconds !== null) text += ` in ${jump.seconds.toFixed(1)} s`;
    if (jump.metresPerSecond !== null) text += ` = ${format.speedKmh(jump.metresPerSecond)}`;
    rows.push(fact(doc, "Jump", text));
  }
  if (typeof entry.validator === "string" && entry.validator) rows.push(fact(doc, "Validator", entry.validator, "mono"));
  if (Number.isFinite(entry.attempts) && entry.attempts > 0) rows.push(fact(doc, "Attempts", String(entry.attempts)));
  rows.push(fact(doc, "Replays", String(entry.replay_count ?? 0)));
  if (entry.status !== "new") {
    const by = typeof entry.status_by === "string" && entry.status_by ? ` by ${entry.status_by}` : "";
    rows.push(fact(doc, "Reviewed", `${entry.status ?? "?"}${by} at ${fullTime(entry.status_at)}`));
  }
  return rows;
}

/** Show the panel for `entry` (the list entry while loading, then the full one with headers and payload). */
export function renderDetail(ui, entry, { loading = false, error = null, nowMs = Date.now() } = {}) {
  const f = ui.fields;
  const doc = ui.doc;
  f.detail.hidden = false;
  f["detail-empty"].hidden = true;
  setText(f["detail-id"], entry.id);
  f["detail-reason"].style.setProperty("--chip", reasonColour(entry.reason));
  setText(f["detail-reason"], reasonLabel(entry.reason));
  fillStatus(f["detail-status"], entry);
  setText(f["detail-text"], typeof entry.detail === "string" ? entry.detail : "");
  f["detail-facts"].replaceChildren(...facts(doc, entry, nowMs));
  const writable = isSelectable(entry) && !loading;
  for (const name of ["replay", "edit", "discard"]) ui.actions[name].disabled = !writable;
  const asIs = canReplayAsIs(entry);
  if (!asIs) ui.actions.replay.disabled = true;
  ui.actions.replay.title = asIs ? "" : "Too large to replay as is; edit and replay a corrected payload";
  const note = loading || error ? null : payloadNote(entry);
  f["payload-note"].hidden = note === null;
  setText(f["payload-note"], note ?? "");

  const headerBody = f["detail-headers"];
  const payload = f["detail-payload"];
  if (loading || error) {
    const td = doc.createElement("td");
    td.colSpan = 2;
    td.className = "muted";
    td.textContent = error ? error : "Loading…";
    const tr = doc.createElement("tr");
    tr.append(td);
    headerBody.replaceChildren(tr);
    setText(payload, "");
    setText(f["payload-kind"], "");
    return;
  }
  const rows = headerRows(entry.headers).map(([name, value]) => {
    const tr = doc.createElement("tr");
    const th = doc.createElement("th");
    th.scope = "row";
    th.textContent = name;
    const td = doc.createElement("td");
    td.textContent = value;
    tr.append(th, td);
    return tr;
  });
  if (rows.length === 0) {
    const td = doc.createElement("td");
    td.colSpan = 2;
    td.className = "muted";
    td.textContent = "No headers.";
    const tr = doc.createElement("tr");
    tr.append(td);
    rows.push(tr);
  }
  headerBody.replaceChildren(...rows);
  setText(payload, prettyPayload(entry));
  const isJson = entry.payload_json !== null && entry.payload_json !== undefined;
  const kind = entry.payload_truncated === true ? "raw text (a preview)" : isJson ? "JSON" : "raw text (not JSON)";
  setText(f["payload-kind"], kind);
}

export function hideDetail(ui) {
  ui.fields.detail.hidden = true;
  ui.fields["detail-empty"].hidden = false;
  ui.fields.editor.hidden = true;
  showActionMessage(ui, null);
}

/** The line under the action buttons; kind "ok" | "error" | "info"; null hides it. */
export function showActionMessage(ui, message, kind = "info") {
  const element = ui.fields["action-message"];
  if (message === null) {
    element.hidden = true;
    setText(element, "");
    return;
  }
  element.dataset.kind = kind;
  setText(element, message);
  element.hidden = false;
}

