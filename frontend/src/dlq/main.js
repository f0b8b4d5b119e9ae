// Wiring of the rejected-ping review page (/dlq): filters -> list (cursor paging, auto-refresh merge) ->
// detail panel (headers, payload, small map) -> replay / edit-and-replay / discard, one at a time or in bulk.
//
// Every read goes through api.getJson and is tagged with a sequence number so that a slow answer to an older
// request (filters changed meanwhile, another row opened) never overwrites a newer one. Writes are serialised
// (`busy`): the token dialog and the buttons cannot be re-entered while one is in flight.

import "maplibre-gl/dist/maplibre-gl.css";
import "../styles.css";
import "./dlq.css";
import { getJson, postWithToken, tokenStore } from "./api.js";
import { createReadAccess, tokenStore as viewerTokenStore } from "../access.js";
import { createTokenPrompt as createViewerPrompt } from "../token-dialog.js";
import { renderReasonChart, renderSparkline } from "./chart.js";
import { createGhostMap } from "./ghostmap.js";
import { appendPage, bulkOutcome, emptyList, firstPage, mergeRefresh, patchEntry, statusAfter } from "./list.js";
import { parseEditedPayload, prettyPayload } from "./payload.js";
import {
  emptyFilters,
  entryUrl,
  filtersFromSearch,
  filtersToSearch,
  listUrl,
  localInputToMs,
  msToLocalInput,
  sameFilters,
} from "./query.js";
import { reasonLabel, useReasons } from "./reasons.js";
import { headerState, pruned, toggled, withAll } from "./selection.js";
import { denseMinutes, reasonBars, seriesTotal } from "./stats.js";
import { createTokenPrompt } from "./token.js";
import * as view from "./view.js";

const REFRESH_MS = 5000;
const AUTO_REFRESH_KEY = "tracker.dlq.autoRefresh";

const ui = view.bindUi(document);
const tokens = tokenStore(safeStorage("sessionStorage"));
const askToken = createTokenPrompt(ui);
// Reads carry the admin token once one was given for writes (an operator sees who replayed what), else the
// viewer token when the gateway wants one.
const viewerDialog = document.querySelector('[data-field="viewer-dialog"]');
const readAccess = createReadAccess({
  preferred: [tokens],
  stores: [viewerTokenStore(safeStorage("sessionStorage"))],
  ask: createViewerPrompt({
    dialog: viewerDialog,
    input: document.querySelector('[data-field="viewer-input"]'),
    error: document.querySelector('[data-field="viewer-error"]'),
  }),
});

const state = {
  filters: filtersFromSearch(location.search),
  list: emptyList(),
  listLoading: false,
  ticked: new Set(),
  stats: null,
  /** The entry shown in the panel: the full one from api/dlq/{id} once loaded, else the list entry. */
  openId: null,
  detail: null,
  detailLoaded: false,
  busy: false,
  ready: false,
};
let listSeq = 0;
let detailSeq = 0;
let statsSeq = 0;
let refreshTimer = null;
let ghostMap = null;

function safeStorage(name) {
  try {
    return window[name];
  } catch {
    return null;
  }
}

// --- reads -------------------------------------------------------------------------------------------

function read(url) {
  return getJson(url, { access: readAccess });
}

function noteFreshness(response) {
  view.renderFreshness(ui, { ok: response.ok, atMs: Date.now(), error: response.error });
}

async function loadStats() {
  const seq = ++statsSeq;
  const response = await read("api/dlq/stats");
  if (seq !== statsSeq) return;
  if (!response.ok || !response.body) {
    noteFreshness(response);
    return;
  }
  state.stats = response.body;
  renderStats();
}

function renderStats() {
  const stats = state.stats;
  const series = denseMinutes(stats && stats.per_minute);
  const lastHour = stats ? seriesTotal(series) : NaN;
  view.renderCounters(ui, stats, lastHour);
  const bars = reasonBars(stats && stats.by_reason);
  view.renderReasonOptions(ui, bars.map((bar) => ({ code: bar.reason, label: bar.label })));
  renderReasonChart(ui.fields["reason-chart"], bars, { active: state.filters.reason, onPick: pickReason });
  renderSparkline(ui.fields.sparkline, series);
  view.renderTopPartners(ui, stats && stats.by_partner, { active: state.filters.partner, onPick: pickPartner });
  const peak = series.reduce((max, pair) => Math.max(max, pair[1]), 0);
  view.setText(
    ui.fields["sparkline-caption"],
    stats ? `${lastHour.toLocaleString("en-US")} in the last hour · peak ${peak}/min` : "—",
  );
}

/** Re-read the first page: `replace` for a filter change, else merge (auto-refresh keeps loaded pages). */
async function loadList({ replace }) {
  const seq = ++listSeq;
  state.listLoading = true;
  if (replace) {
    state.list = emptyList();
    renderList();
  } else {
    view.renderFooter(ui, state.list, true);
  }
  const response = await read(listUrl(state.filters));
  if (seq !== listSeq) return;
  state.listLoading = false;
  noteFreshness(response);
  if (response.ok) {
    state.list = replace ? firstPage(response.body) : mergeRefresh(state.list, response.body);
    syncOpenEntry();
  } else {
    view.showToast(ui, `Could not load rejected pings: ${response.error}`);
  }
  renderList();
}

async function loadMore() {
  if (state.list.nextCursor === null || state.listLoading) return;
  const seq = ++listSeq;
  state.listLoading = true;
  view.renderFooter(ui, state.list, true);
  const response = await read(listUrl(state.filters, { cursor: state.list.nextCursor }));
  if (seq !== listSeq) return;
  state.listLoading = false;
  if (response.ok) state.list = appendPage(state.list, response.body);
  else view.showToast(ui, `Could not load more: ${response.error}`);
  renderList();
}

/** A refresh may carry a newer status for the open entry (reviewed elsewhere): reflect it in the panel. */
function syncOpenEntry() {
  if (state.detail === null) return;
  const listed = state.list.items.find((item) => item.id === state.openId);
  if (!listed || listed.status === state.detail.status) return;
  state.detail = { ...state.detail, status: listed.status, status_by: listed.status_by, status_at: listed.status_at, replay_count: listed.replay_count };
  renderOpenDetail();
}

function renderList() {
  state.ticked = pruned(state.ticked, state.list.items);
  view.renderRows(ui, state.list.items, {
    openId: state.openId,
    ticked: state.ticked,
    nowMs: Date.now(),
    handlers: { onOpen: (id) => select(id), onTick },
  });
  view.renderFooter(ui, state.list, state.listLoading);
  view.renderSelectionBar(ui, state.ticked, headerState(state.ticked, state.list.items));
  if (ghostMap) ghostMap.setItems(state.list.items);
}

async function refresh() {
  if (state.listLoading || state.busy) return;
  await Promise.all([loadStats(), loadList({ replace: false })]);
}

// --- filters -----------------------------------------------------------------------------------------

function writeFiltersToForm() {
  const elements = ui.filters.elements;
  const { reason, partner, status, since, until } = state.filters;
  if (reason && ![...elements.reason.options].some((option) => option.value === reason)) {
    view.renderReasonOptions(ui, [{ code: reason, label: reasonLabel(reason) }]);
  }
  elements.reason.value = reason;
  elements.partner.value = partner;
  elements.status.value = status;
  elements.since.value = msToLocalInput(since);
  elements.until.value = msToLocalInput(until);
}

function readFiltersFromForm() {
  const elements = ui.filters.elements;
  return {
    reason: elements.reason.value,
    partner: elements.partner.value,
    status: elements.status.value,
    since: localInputToMs(elements.since.value),
    // "To 14:05" means up to the end of that minute.
    until: (() => {
      const ms = localInputToMs(elements.until.value);
      return ms === null ? null : ms + 59_999;
    })(),
  };
}

function applyFilters(filters) {
  const changed = !sameFilters(filters, state.filters);
  state.filters = filtersFromSearch(filtersToSearch(filters)); // normalised
  history.replaceState(null, "", `${location.pathname}${filtersToSearch(state.filters)}${location.hash}`);
  writeFiltersToForm();
  if (state.stats) renderStats(); // the active bar
  if (changed) loadList({ replace: true });
}

function pickReason(reason) {
  applyFilters({ ...state.filters, reason: state.filters.reason === reason ? "" : reason });
}

function pickPartner(partnerId) {
  applyFilters({ ...state.filters, partner: state.filters.partner === partnerId ? "" : partnerId });
}

// --- selection and detail ----------------------------------------------------------------------------

function onTick(id, on) {
  state.ticked = toggled(state.ticked, id, on);
  renderList();
}

function renderOpenDetail() {
  if (state.detail === null) return;
  view.renderDetail(ui, state.detail, { loading: !state.detailLoaded, error: state.detailError });
}

/** Open the entry `id` in the panel; resolves when its headers and payload are shown. */
async function select(id) {
  const seq = ++detailSeq;
  const listed = state.list.items.find((item) => item.id === id) ?? null;
  const switching = state.openId !== id;
  state.openId = id;
  state.detail = listed ?? { id, reason: "", detail: "", status: "" };
  state.detailLoaded = false;
  state.detailError = null;
  if (switching) {
    ui.fields.editor.hidden = true;
    view.showActionMessage(ui, null);
  }
  renderOpenDetail();
  renderList();
  const response = await read(entryUrl(id));
  if (seq !== detailSeq) return;
  if (response.ok && response.body && typeof response.body === "object") {
    state.detail = response.body;
    state.detailLoaded = true;
  } else {
    state.detailError = response.status === 404 ? `No rejected ping with id ${id}.` : `Could not load it: ${response.error}`;
  }
  renderOpenDetail();
  if (ghostMap) {
    await ghostMap.ready;
    if (seq === detailSeq) ghostMap.show(state.detailLoaded ? state.detail : listed);
  }
}

function closeDetail() {
  detailSeq += 1;
  const previous = state.openId;
  state.openId = null;
  state.detail = null;
  view.hideDetail(ui);
  if (ghostMap) ghostMap.show(null);
  renderList();
  const row = previous && ui.rowCache.get(previous);
  if (row) row.tr.focus({ preventScroll: true });
}

// --- writes ------------------------------------------------------------------------------------------

function post(url, payload) {
  return postWithToken(url, payload, { tokens, askToken });
}

function applyOutcome(id, action, response) {
  const previous = state.list.items.find((item) => item.id === id) ?? (state.detail && state.detail.id === id ? state.detail : null);
  const patch = statusAfter(action, response, previous);
  state.list = patchEntry(state.list, id, patch);
  if (state.detail && state.detail.id === id) state.detail = { ...state.detail, ...patch };
}

async function act(action, { payload } = {}) {
  if (state.busy || state.detail === null) return;
  const id = state.detail.id;
  state.busy = true;
  const verb = action === "replay" ? (payload === undefined ? "Replaying" : "Replaying the edited payload") : "Discarding";
  view.showActionMessage(ui, `${verb}…`);
  try {
    const response = await post(entryUrl(id, action), payload === undefined ? undefined : { payload });
    if (response.cancelled) {
      view.showActionMessage(ui, "Cancelled: no token given.", "info");
      return;
    }
    if (!response.ok) {
      view.showActionMessage(ui, `${action === "replay" ? "Replay" : "Discard"} failed: ${response.error}`, "error");
      if (response.status === 409) select(id); // reviewed elsewhere meanwhile: show the current status
      return;
    }
    applyOutcome(id, action, response.body);
    ui.fields.editor.hidden = true;
    const done = action === "replay" ? `Replayed (replay #${state.detail.replay_count}).` : "Discarded.";
    view.showActionMessage(ui, done, "ok");
    renderOpenDetail();
    renderList();
    loadStats();
  } finally {
    state.busy = false;
  }
}

function sendEdited() {
  const parsed = parseEditedPayload(ui.fields["edit-payload"].value);
  const error = ui.fields["edit-error"];
  if (!parsed.ok) {
    error.textContent = parsed.error;
    error.hidden = false;
    ui.fields["edit-payload"].focus();
    return;
  }
  error.hidden = true;
  act("replay", { payload: parsed.payload });
}

function openEditor() {
  if (state.detail === null || !state.detailLoaded) return;
  ui.fields["edit-payload"].value = prettyPayload(state.detail);
  ui.fields["edit-error"].hidden = true;
  ui.fields.editor.hidden = false;
  ui.fields["edit-payload"].focus();
}

async function bulk(action) {
  if (state.busy || state.ticked.size === 0) return;
  const ids = state.list.items.filter((item) => state.ticked.has(item.id)).map((item) => item.id);
  const verb = action === "replay" ? "Replay" : "Discard";
  state.busy = true;
  try {
    const response = await post(`api/dlq/${action}`, { ids });
    if (response.cancelled) return;
    if (!response.ok) {
      view.renderBulkResults(ui, verb, { error: response.error });
      return;
    }
    const outcome = bulkOutcome(ids, response.body);
    const replayCounts = new Map();
    for (const result of response.body.results || []) {
      if (result && Number.isFinite(result.replay_count)) replayCounts.set(result.id, result.replay_count);
    }
    for (const id of outcome.succeeded) {
      applyOutcome(id, action, replayCounts.has(id) ? { replay_count: replayCounts.get(id) } : null);
    }
    state.ticked = new Set([...state.ticked].filter((id) => !outcome.succeeded.includes(id)));
    view.renderBulkResults(ui, verb, outcome);
    renderList();
    renderOpenDetail();
    loadStats();
  } finally {
    state.busy = false;
  }
}

// --- start-up ----------------------------------------------------------------------------------------

function setAutoRefresh(on) {
  clearInterval(refreshTimer);
  refreshTimer = on ? setInterval(() => document.hidden || refresh(), REFRESH_MS) : null;
  ui.fields["auto-refresh"].checked = on;
  try {
    localStorage.setItem(AUTO_REFRESH_KEY, on ? "1" : "0");
  } catch {
    /* not remembered */
  }
}

function wireEvents() {
  ui.filters.addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters(readFiltersFromForm());
  });
  ui.filters.elements.reason.addEventListener("change", () => applyFilters(readFiltersFromForm()));
  ui.filters.elements.status.addEventListener("change", () => applyFilters(readFiltersFromForm()));
  ui.actions["clear-filters"].addEventListener("click", () => applyFilters(emptyFilters()));
  ui.actions["load-more"].addEventListener("click", loadMore);
  ui.fields["select-all"].addEventListener("change", (event) => {
    state.ticked = withAll(state.ticked, state.list.items, event.target.checked);
    renderList();
  });
  ui.actions["clear-selection"].addEventListener("click", () => {
    state.ticked = new Set();
    renderList();
  });
  ui.actions["bulk-replay"].addEventListener("click", () => bulk("replay"));
  ui.actions["bulk-discard"].addEventListener("click", () => bulk("discard"));
  ui.actions["close-results"].addEventListener("click", () => (ui.fields["bulk-results"].hidden = true));
  ui.actions["close-detail"].addEventListener("click", closeDetail);
  ui.actions.replay.addEventListener("click", () => act("replay"));
  ui.actions.discard.addEventListener("click", () => act("discard"));
  ui.actions.edit.addEventListener("click", openEditor);
  ui.actions["send-edited"].addEventListener("click", sendEdited);
  ui.actions["cancel-edit"].addEventListener("click", () => (ui.fields.editor.hidden = true));
  ui.fields["auto-refresh"].addEventListener("change", (event) => setAutoRefresh(event.target.checked));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || ui.fields["token-dialog"].open || viewerDialog.open || state.openId === null) return;
    if (!ui.fields.editor.hidden && ui.fields.editor.contains(document.activeElement)) {
      ui.fields.editor.hidden = true;
      return;
    }
    closeDetail();
  });
}

function exposeTestHooks() {
  window.__dlq = {
    get ready() {
      return state.ready;
    },
    rows: () => state.list.items.map(({ id, reason, status }) => ({ id, reason, status })),
    select: (id) => select(id),
    detailText: () => ui.fields["detail-payload"].textContent,
    ghostCount: () => (ghostMap ? ghostMap.ghostCount() : 0),
    lineDrawn: () => Boolean(ghostMap && ghostMap.lineDrawn()),
    refresh: () => refresh(),
  };
}

async function start() {
  exposeTestHooks();
  // The reasons come from the server (its one list), before anything shows one: the filter's options, the
  // chart's colours and order, the chips and the ghost map's colours.
  const [config, serviceArea] = await Promise.all([read("api/config"), read("api/service-area")]);
  if (config.ok && config.body && config.body.viewer_token_required && !readAccess.token()) await readAccess.ask(null);
  view.renderReasonOptions(ui, useReasons(config.ok && config.body ? config.body.reasons : []));
  writeFiltersToForm();
  wireEvents();
  ghostMap = createGhostMap(document.getElementById("dlq-map"), {
    serviceArea: serviceArea.ok ? serviceArea.body : null,
    tileUrl: config.ok && config.body ? config.body.tile_url : null,
    onPick: (id) => select(id),
  });
  if (ghostMap.failed) view.setText(ui.fields["map-note"], `The map could not start: ${ghostMap.failed.message}`);
  await Promise.all([loadStats(), loadList({ replace: true }), ghostMap.ready]);
  renderList(); // ghosts, now that the map has loaded
  let remembered = null;
  try {
    remembered = localStorage.getItem(AUTO_REFRESH_KEY);
  } catch {
    /* default */
  }
  setAutoRefresh(remembered === "1");
  state.ready = true;
}

start().catch((error) => {
  console.error(error);
  view.showToast(ui, `The page failed to start: ${error.message}`, 60_000);
});
