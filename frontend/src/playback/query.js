// What playback asks the gateway for, and the window the form describes: pure.

export const FLEET_WINDOW_MAX_MS = 60 * 60 * 1000; // the gateway's limit for /api/history/fleet
const HOUR_MS = 60 * 60 * 1000;

export function trailUrl(partnerId, from, to) {
  const query = new URLSearchParams({ from: String(Math.floor(from)), to: String(Math.floor(to)) });
  return `api/couriers/${encodeURIComponent(partnerId)}/trail?${query}`;
}

export function fleetUrl(from, to) {
  const query = new URLSearchParams({ from: String(Math.floor(from)), to: String(Math.floor(to)) });
  return `api/history/fleet?${query}`;
}

function pad(value, width = 2) {
  return String(value).padStart(width, "0");
}

/** Epoch ms as a `datetime-local` value (local time, to the second). */
export function toLocalInput(ms) {
  const date = new Date(ms);
  return (
    `${pad(date.getFullYear(), 4)}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A `datetime-local` value (local time) as epoch ms, or null when it is not one. */
export function fromLocalInput(value) {
  const match = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?$/.exec(String(value));
  if (match === null) return null;
  const [, year, month, day, hours, minutes, seconds = "0", fraction = "0"] = match;
  const date = new Date(+year, +month - 1, +day, +hours, +minutes, +seconds, +fraction.padEnd(3, "0"));
  return Number.isFinite(date.getTime()) && date.getMonth() === +month - 1 ? date.getTime() : null;
}

/** The form's default: the last hour. */
export function defaultWindow(nowMs) {
  return { from: nowMs - HOUR_MS, to: nowMs };
}

/**
 * The window and who to play back, from the form's values, or `{ error }` in one line. An empty courier id
 * means the whole fleet (at most an hour).
 */
export function readForm({ courier, from, to }) {
  const partnerId = String(courier ?? "").trim();
  const fromMs = fromLocalInput(from);
  const toMs = fromLocalInput(to);
  if (fromMs === null || toMs === null) return { error: "Enter a start and an end time." };
  if (fromMs >= toMs) return { error: "The start must be before the end." };
  if (partnerId === "" && toMs - fromMs > FLEET_WINDOW_MAX_MS) {
    return { error: "The whole fleet plays back at most an hour; shorten the window or pick a courier." };
  }
  return { partnerId: partnerId === "" ? null : partnerId, from: fromMs, to: toMs };
}

/** A clock time for the playback label: HH:MM:SS local. */
export function clockLabel(ms) {
  const date = new Date(ms);
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}
