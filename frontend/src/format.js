// Human-readable values for the header and the side panel; pure, locale-stable where tests need it.

export function speedKmh(metresPerSecond) {
  if (!Number.isFinite(metresPerSecond)) return "—";
  return `${(metresPerSecond * 3.6).toFixed(1)} km/h`;
}

/** "just now", "12 s ago", "4 min ago", "2 h 5 min ago"; clock skew into the future reads as "just now". */
export function ago(tsMs, nowMs) {
  if (!Number.isFinite(tsMs)) return "—";
  const seconds = Math.floor((nowMs - tsMs) / 1000);
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

export function count(value) {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "—";
}

export function rate(value) {
  if (!Number.isFinite(value)) return "—";
  return value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(1);
}

export function latency(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (Math.abs(ms) >= 10_000) return `${(ms / 1000).toFixed(0)} s`;
  return `${Math.round(ms)} ms`;
}

const COMPASS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"];

export function heading(degrees) {
  if (!Number.isFinite(degrees)) return "—";
  const normalised = ((degrees % 360) + 360) % 360;
  return `${Math.round(normalised)}° ${COMPASS[Math.round(normalised / 45) % 8]}`;
}

export function coordinates(lat, lon) {
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return "—";
  return `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
}
