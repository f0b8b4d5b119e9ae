// Tracks as sorted arrays and interpolation along them: pure, no DOM, no MapLibre.
//
// A track is `{ t, lat, lon }`: Float64Arrays of equal length, oldest first. Drawing a courier at time `t`
// finds the last fix at or before `t` (walking on from the previous frame's index, so a playing clock costs
// O(1) per courier per frame; a seek backwards binary-searches) and interpolates linearly towards the next
// fix. Across a gap longer than `maxGapMs` (the courier sent nothing) the marker waits at its last fix
// rather than crossing the city in a straight line, and after its last fix it stays there for `maxGapMs`;
// before its first fix, and past that, it is not drawn.

const MICRO = 1e6;
const POINT_BYTES = 12;

/** A track from the trail window's points `[[ts, lat, lon], ...]`: malformed ones dropped, sorted by time. */
export function trackFromPoints(points) {
  const good = (Array.isArray(points) ? points : []).filter(
    (point) => Array.isArray(point) && point.length >= 3 && point.slice(0, 3).every(Number.isFinite),
  );
  good.sort((a, b) => a[0] - b[0]);
  const track = emptyTrack(good.length);
  good.forEach(([ts, lat, lon], index) => {
    track.t[index] = ts;
    track.lat[index] = lat;
    track.lon[index] = lon;
  });
  return track;
}

function emptyTrack(length) {
  return { t: new Float64Array(length), lat: new Float64Array(length), lon: new Float64Array(length) };
}

/** Bytes of a base64 string (atob in browsers, Buffer in node). */
function decodeBase64(text) {
  if (typeof atob === "function") {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
    return bytes;
  }
  return new Uint8Array(Buffer.from(text, "base64"));
}

/**
 * A track from the fleet window's packed points: base64 of little-endian int32 triples (ms after `fromMs`,
 * latitude and longitude in micro-degrees), oldest first (sorted again if not).
 */
export function trackFromPacked(packed, fromMs) {
  const bytes = typeof packed === "string" ? decodeBase64(packed) : new Uint8Array(0);
  const count = Math.floor(bytes.length / POINT_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * POINT_BYTES);
  const track = emptyTrack(count);
  let sorted = true;
  for (let index = 0; index < count; index += 1) {
    const at = index * POINT_BYTES;
    track.t[index] = fromMs + view.getInt32(at, true);
    track.lat[index] = view.getInt32(at + 4, true) / MICRO;
    track.lon[index] = view.getInt32(at + 8, true) / MICRO;
    if (index > 0 && track.t[index] < track.t[index - 1]) sorted = false;
  }
  if (sorted) return track;
  const points = Array.from({ length: count }, (_, index) => [track.t[index], track.lat[index], track.lon[index]]);
  return trackFromPoints(points);
}

/** The index of the last fix at or before `t` (-1 before the first), starting from `hint` when it helps. */
export function indexAt(track, t, hint = -1) {
  const times = track.t;
  const last = times.length - 1;
  if (last < 0 || t < times[0]) return -1;
  if (hint >= 0 && hint <= last && times[hint] <= t) {
    let index = hint;
    // a playing clock moves a few fixes per frame at most: walk; far jumps binary-search
    for (let steps = 0; index < last && times[index + 1] <= t; steps += 1) {
      if (steps === 8) return search(times, t, index, last);
      index += 1;
    }
    return index;
  }
  return search(times, t, 0, last);
}

function search(times, t, low, high) {
  // the last index in [low, high] with times[index] <= t, given times[low] <= t
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (times[middle] <= t) low = middle;
    else high = middle - 1;
  }
  return low;
}

/**
 * Where the courier is drawn at `t`: `{ index, lat, lon }` (index: the last fix passed), or null when it is
 * not drawn (before its first fix, or more than `maxGapMs` after its last). `out` is reused when given.
 */
export function positionAt(track, t, { hint = -1, maxGapMs = Infinity, out = null } = {}) {
  const index = indexAt(track, t, hint);
  if (index < 0) return null;
  const result = out ?? {};
  result.index = index;
  const next = index + 1;
  const times = track.t;
  if (next < times.length && times[next] - times[index] <= maxGapMs && times[next] > times[index]) {
    const share = (t - times[index]) / (times[next] - times[index]);
    result.lat = track.lat[index] + (track.lat[next] - track.lat[index]) * share;
    result.lon = track.lon[index] + (track.lon[next] - track.lon[index]) * share;
    return result;
  }
  if (next >= times.length && t - times[index] > maxGapMs) return null;
  result.lat = track.lat[index];
  result.lon = track.lon[index];
  return result;
}

/**
 * The route ridden up to `position`: `[lon, lat]` of every fix passed, then the drawn position (when it is not
 * on a fix). With `cache` (`{ fixes: [], upTo: -1 }`, kept between frames) only the fixes passed since the
 * last frame are added: a playing hour of every fix costs a copy of the array per frame, not 3,600 new pairs.
 */
export function routeUpTo(track, position, cache = { fixes: [], upTo: -1 }) {
  if (position === null) {
    cache.fixes.length = 0;
    cache.upTo = -1;
    return [];
  }
  const { fixes } = cache;
  if (position.index < cache.upTo) fixes.length = position.index + 1; // a seek backwards
  for (let index = fixes.length; index <= position.index; index += 1) fixes.push([track.lon[index], track.lat[index]]);
  cache.upTo = position.index;
  const last = fixes[fixes.length - 1];
  return last[0] === position.lon && last[1] === position.lat ? fixes.slice() : [...fixes, [position.lon, position.lat]];
}

/** [[west, south], [east, north]] around a track's fixes, or null when it has none. */
export function trackBounds(track) {
  if (track.t.length === 0) return null;
  let west = Infinity;
  let south = Infinity;
  let east = -Infinity;
  let north = -Infinity;
  for (let index = 0; index < track.t.length; index += 1) {
    west = Math.min(west, track.lon[index]);
    east = Math.max(east, track.lon[index]);
    south = Math.min(south, track.lat[index]);
    north = Math.max(north, track.lat[index]);
  }
  return [
    [west, south],
    [east, north],
  ];
}

// --- the fleet ---------------------------------------------------------------------------------------

/**
 * A fleet from the fleet window's answer (`{from, couriers: [{id, points}]}`): tracks, and per courier the
 * index the last frame found and the `[lon, lat]` pair it draws (reused frame after frame).
 */
export function createFleet(body) {
  const couriers = Array.isArray(body && body.couriers) ? body.couriers : [];
  const from = Number(body && body.from);
  const ids = [];
  const tracks = [];
  for (const courier of couriers) {
    if (!courier || typeof courier.id !== "string") continue;
    const track = trackFromPacked(courier.points, from);
    if (track.t.length === 0) continue;
    ids.push(courier.id);
    tracks.push(track);
  }
  return {
    ids,
    tracks,
    hints: new Int32Array(tracks.length).fill(-1),
    pairs: tracks.map(() => [0, 0]),
    points: tracks.reduce((sum, track) => sum + track.t.length, 0),
  };
}

/**
 * Fill `coordinates` (cleared first) with the `[lon, lat]` of every courier drawn at `t`; returns it. The
 * pairs are the fleet's own, rewritten in place, so a frame allocates nothing per courier.
 */
export function fleetAt(fleet, t, maxGapMs, coordinates = []) {
  coordinates.length = 0;
  const scratch = { index: -1, lat: 0, lon: 0 };
  const { tracks, hints, pairs } = fleet;
  for (let courier = 0; courier < tracks.length; courier += 1) {
    const position = positionAt(tracks[courier], t, { hint: hints[courier], maxGapMs, out: scratch });
    if (position === null) {
      hints[courier] = -1;
      continue;
    }
    hints[courier] = position.index;
    const pair = pairs[courier];
    pair[0] = position.lon;
    pair[1] = position.lat;
    coordinates.push(pair);
  }
  return coordinates;
}
