// Timestamps in the table and the detail panel: local wall-clock time, with the date when not today.

function pad(value, width = 2) {
  return String(value).padStart(width, "0");
}

/** "14:03:27" today, "Mar 4 14:03:27" on another day, "—" for no time. */
export function shortTime(ms, nowMs = Date.now()) {
  if (!Number.isFinite(ms)) return "—";
  const date = new Date(ms);
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const now = new Date(nowMs);
  if (date.toDateString() === now.toDateString()) return clock;
  const month = date.toLocaleString("en-US", { month: "short" });
  const year = date.getFullYear() === now.getFullYear() ? "" : ` ${date.getFullYear()}`;
  return `${month} ${date.getDate()}${year} ${clock}`;
}

/** "2024-03-04 14:03:27.123" local, for exact reading in the detail panel. */
export function fullTime(ms) {
  if (!Number.isFinite(ms)) return "—";
  const date = new Date(ms);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  );
}
