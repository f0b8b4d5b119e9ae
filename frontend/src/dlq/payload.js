// The rejected payload as the reviewer sees and edits it. Pure text functions; rendering puts the results in
// text nodes only, so whatever a phone sent shows up as characters, never as markup.

/** The payload for the <pre>: pretty JSON when the server could parse it, else the raw (decoded) text. */
export function prettyPayload(entry) {
  if (entry && entry.payload_json !== null && entry.payload_json !== undefined) {
    return JSON.stringify(entry.payload_json, null, 2);
  }
  if (entry && typeof entry.payload_text === "string") return entry.payload_text;
  return "";
}

function bytes(value) {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "?";
}

/**
 * Whether the entry can be replayed as it is: not when the server keeps only a preview of its payload (or the
 * dead letter itself kept only part of the original record). Such a ping can still be edited and replayed.
 */
export function canReplayAsIs(entry) {
  return Boolean(entry) && entry.payload_truncated !== true && entry.replay_as_is !== false;
}

/** A sentence for the reviewer when the payload panel does not hold the whole payload; null when it does. */
export function payloadNote(entry) {
  if (!entry) return null;
  if (entry.payload_truncated === true) {
    const sha = typeof entry.payload_sha256 === "string" ? ` (sha256 ${entry.payload_sha256})` : "";
    return (
      `Too large to replay as is: showing the first ${bytes(entry.payload_shown)} of ${bytes(entry.payload_size)} ` +
      `bytes${sha}. Edit and replay a corrected payload instead.`
    );
  }
  if (entry.replay_as_is === false) {
    return "The dead letter keeps only part of the original record, so it cannot be replayed as is. Edit and replay a corrected payload instead.";
  }
  return null;
}

/**
 * Check an edited payload before it is sent for replay. Replays carry a ping, i.e. a JSON object.
 * Returns { ok: true, payload } or { ok: false, error } with a message meant for the reviewer.
 */
export function parseEditedPayload(text) {
  if (typeof text !== "string" || text.trim() === "") return { ok: false, error: "The payload is empty." };
  let payload;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `Not valid JSON: ${error.message}` };
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    const kind = payload === null ? "null" : Array.isArray(payload) ? "an array" : typeof payload;
    return { ok: false, error: `A ping must be a JSON object, not ${kind}.` };
  }
  return { ok: true, payload };
}

/** One line of at most `max` characters: whitespace runs collapsed, an ellipsis when cut. */
export function truncate(text, max = 120) {
  if (typeof text !== "string") return "";
  const line = text.replace(/\s+/g, " ").trim();
  if (line.length <= max) return line;
  return `${line.slice(0, Math.max(0, max - 1)).trimEnd()}…`;
}

/** Headers as [name, value] string pairs; anything malformed from the server is shown, not dropped. */
export function headerRows(headers) {
  if (!Array.isArray(headers)) return [];
  return headers.map((pair) =>
    Array.isArray(pair) ? [String(pair[0] ?? ""), pair[1] === null || pair[1] === undefined ? "" : String(pair[1])] : [String(pair), ""],
  );
}

const EARTH_RADIUS_M = 6_371_008.8;

export function haversineMetres(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

function pingTimeMs(entry) {
  const ts = entry && entry.payload_json && entry.payload_json.ts;
  if (Number.isFinite(ts)) return ts;
  if (typeof ts === "string") {
    const parsed = Date.parse(ts);
    if (Number.isFinite(parsed)) return parsed;
  }
  return null;
}

/**
 * The jump of an impossible_speed ping: { from: [lon, lat], to: [lon, lat], metres, seconds|null,
 * metresPerSecond|null } from the courier's last accepted fix to the rejected point, or null when either end
 * is unknown.
 */
export function jumpOf(entry) {
  if (!entry || entry.reason !== "impossible_speed") return null;
  const fix = entry.last_fix;
  if (!fix || !Number.isFinite(fix.lat) || !Number.isFinite(fix.lon)) return null;
  if (!Number.isFinite(entry.lat) || !Number.isFinite(entry.lon)) return null;
  const metres = haversineMetres(fix.lat, fix.lon, entry.lat, entry.lon);
  const pingMs = pingTimeMs(entry);
  const seconds = pingMs !== null && Number.isFinite(fix.ts) ? (pingMs - fix.ts) / 1000 : null;
  return {
    from: [fix.lon, fix.lat],
    to: [entry.lon, entry.lat],
    metres,
    seconds,
    metresPerSecond: seconds !== null && seconds > 0 ? metres / seconds : null,
  };
}
