// Filters of the review list as plain data, and their two spellings: the API query string
// (`api/dlq?reason=&partner=&status=&since=&until=&limit=&cursor=`) and the page's own URL (so a filtered view
// can be bookmarked or pasted to a colleague). Times are epoch milliseconds; the form edits them as local
// `datetime-local` strings.

import { STATUSES } from "./reasons.js";

export const PAGE_SIZE = 50;

/** filters: { reason, partner, status } strings ("" = any) and since/until epoch ms or null. */
export function emptyFilters() {
  return { reason: "", partner: "", status: "", since: null, until: null };
}

/** The widest time the API reads, in ms either side of 1970: `since`/`until` of at most 15 digits
 * (INT_PARAM_DIGITS in tracker/dlq/http.py: Redis keeps scores as doubles, exact only up to 2^53), about the
 * year 33658. Inside a JavaScript Date's range (8.64e15 ms), and far past a datetime-local input's year 9999. */
const API_MAX_MS = 999_999_999_999_999;

/** A time filter as whole epoch ms the API accepts, or null: the API reads `since`/`until` as integers of at
 * most 15 digits (it answers 400 to more), and String() of 1e21 is "1e+21". */
function epochMs(value) {
  if (!Number.isFinite(value)) return null;
  const ms = Math.trunc(value);
  return Math.abs(ms) <= API_MAX_MS ? ms : null;
}

function cleanFilters(filters) {
  const clean = emptyFilters();
  if (typeof filters.reason === "string") clean.reason = filters.reason.trim();
  if (typeof filters.partner === "string") clean.partner = filters.partner.trim();
  if (STATUSES.includes(filters.status)) clean.status = filters.status;
  clean.since = epochMs(filters.since);
  clean.until = epochMs(filters.until);
  return clean;
}

function filterParams(filters) {
  const clean = cleanFilters(filters);
  const params = new URLSearchParams();
  if (clean.reason) params.set("reason", clean.reason);
  if (clean.partner) params.set("partner", clean.partner);
  if (clean.status) params.set("status", clean.status);
  if (clean.since !== null) params.set("since", String(clean.since));
  if (clean.until !== null) params.set("until", String(clean.until));
  return params;
}

/** The relative URL of one page of the list: filters in a fixed order, then limit and cursor. */
export function listUrl(filters, { limit = PAGE_SIZE, cursor = null } = {}) {
  const params = filterParams(filters);
  params.set("limit", String(limit));
  if (typeof cursor === "string" && cursor !== "") params.set("cursor", cursor);
  return `api/dlq?${params}`;
}

/** `api/dlq/{id}` plus an optional action; ids contain a colon ("2:1534"), so they are always encoded. */
export function entryUrl(id, action = "") {
  return `api/dlq/${encodeURIComponent(id)}${action ? `/${action}` : ""}`;
}

/** The page's own query string for these filters ("" when none), for history.replaceState. */
export function filtersToSearch(filters) {
  const params = filterParams(filters);
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Filters from the page's query string; anything unparseable is ignored, never thrown. */
export function filtersFromSearch(search) {
  const params = new URLSearchParams(search);
  const number = (name) => {
    const value = params.get(name);
    if (value === null || value.trim() === "") return null;
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : null;
  };
  return cleanFilters({
    reason: params.get("reason") ?? "",
    partner: params.get("partner") ?? "",
    status: params.get("status") ?? "",
    since: number("since"),
    until: number("until"),
  });
}

export function sameFilters(a, b) {
  return filterParams(a).toString() === filterParams(b).toString();
}

function pad(value, width = 2) {
  return String(value).padStart(width, "0");
}

/** Epoch ms -> "YYYY-MM-DDTHH:MM" in the browser's zone (the value format of <input type=datetime-local>). */
export function msToLocalInput(ms) {
  if (!Number.isFinite(ms)) return "";
  const date = new Date(ms);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** "YYYY-MM-DDTHH:MM[:SS]" local time -> epoch ms, or null when empty or invalid. */
export function localInputToMs(value) {
  if (typeof value !== "string") return null;
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value.trim());
  if (match === null) return null;
  const [, year, month, day, hours, minutes, seconds = "0"] = match;
  const ms = new Date(+year, +month - 1, +day, +hours, +minutes, +seconds).getTime();
  return Number.isFinite(ms) ? ms : null;
}
