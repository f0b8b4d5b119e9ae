// Smooth motion: a marker glides from where it is drawn to its newest fix instead of jumping there. Pure
// functions over plain objects (no DOM, no map), so node tests can check the rules:
//
// - A glide lasts as long as the courier took between its last two fixes (fix time, capped at
//   MAX_GLIDE_MS), so a courier pinging once a second moves continuously and arrives at each fix as the next
//   one comes in. The marker is then up to one ping interval behind the newest fix, never ahead of it.
// - It is linear and clamped: the drawn position is never past the newest fix (no extrapolation, no
//   overshoot), and once there it stays there. A courier that stops stays put.
// - A new fix mid-glide starts the next glide from where the marker is drawn at that moment, so the marker
//   never jumps back to the previous fix.
// - A first fix, a fix after a gap longer than MAX_GLIDE_MS (the courier was silent: gliding would invent
//   a path), a fix whose time is not after the last one, or a jump over MAX_GLIDE_M is drawn at once.

export const MAX_GLIDE_MS = 3_000;
/** localStorage key of the switch: "off" turns smooth motion off in this browser (on by default). */
export const MOTION_KEY = "tracker.smoothMotion";
/** Farther than this in one fix and the marker jumps: no vehicle we track covers it in MAX_GLIDE_MS. */
export const MAX_GLIDE_M = 500;
const METRES_PER_DEGREE = 111_320;

/** A glide that has already arrived at [lon, lat] (a marker drawn at its fix). */
export function settledAt(lon, lat, fixTs) {
  return { from: [lon, lat], to: [lon, lat], startMs: 0, durationMs: 0, fixTs };
}

/** Rough metres between two [lon, lat] points (an equirectangular approximation: enough for a threshold). */
function metresBetween(a, b) {
  const dy = (b[1] - a[1]) * METRES_PER_DEGREE;
  const dx = (b[0] - a[0]) * METRES_PER_DEGREE * Math.cos(((a[1] + b[1]) / 2) * (Math.PI / 180));
  return Math.hypot(dx, dy);
}

/** Where `glide` draws its marker at `nowMs` (a new [lon, lat] array). */
export function positionAt(glide, nowMs) {
  const progress = glide.durationMs > 0 ? (nowMs - glide.startMs) / glide.durationMs : 1;
  if (!(progress < 1)) return [glide.to[0], glide.to[1]]; // arrived (also for NaN): exactly the fix
  if (progress <= 0) return [glide.from[0], glide.from[1]];
  return [
    glide.from[0] + (glide.to[0] - glide.from[0]) * progress,
    glide.from[1] + (glide.to[1] - glide.from[1]) * progress,
  ];
}

/** Whether `glide` has arrived at its fix by `nowMs` (nothing left to animate). */
export function arrived(glide, nowMs) {
  return !(glide.durationMs > 0 && nowMs - glide.startMs < glide.durationMs);
}

/**
 * The glide towards a new fix ([lon, lat] at fix time `fixTs`) seen at `nowMs`, given the courier's current
 * glide (`previous`, or undefined for a courier not yet drawn). The same fix again (a status change under
 * the same fix time) keeps the current glide.
 */
export function glideTo(previous, lon, lat, fixTs, nowMs, maxGlideMs = MAX_GLIDE_MS) {
  if (previous === undefined) return settledAt(lon, lat, fixTs);
  if (fixTs === previous.fixTs && lon === previous.to[0] && lat === previous.to[1]) return previous;
  const from = positionAt(previous, nowMs);
  const gapMs = fixTs - previous.fixTs;
  const target = [lon, lat];
  if (!(gapMs > 0 && gapMs <= maxGlideMs) || metresBetween(from, target) > MAX_GLIDE_M) {
    return settledAt(lon, lat, fixTs);
  }
  return { from, to: target, startMs: nowMs, durationMs: gapMs, fixTs };
}

/** Whether smooth motion is on in this browser (`storage`: localStorage, or null where there is none). */
export function motionPreference(storage) {
  try {
    return storage ? storage.getItem(MOTION_KEY) !== "off" : true;
  } catch {
    return true;
  }
}

export function saveMotionPreference(storage, on) {
  try {
    if (storage) storage.setItem(MOTION_KEY, on ? "on" : "off");
  } catch {
    // private mode or a full storage: the choice lasts for this page only
  }
}

/**
 * The page's glides, one per courier drawn. `retarget` after a frame put a courier's newest fix in the
 * store (`retargetFrame` for every courier a frame brought); `step` writes each gliding marker's drawn
 * position into its store entry's coordinates (the array the map source and the click hit-test read) and
 * says whether any is still moving; `stop` forgets every glide and puts each marker back on its fix.
 */
export function createMotion() {
  const glides = new Map();
  return {
    glides,
    retarget(partnerId, courier, nowMs) {
      const glide = glideTo(glides.get(partnerId), courier.lon, courier.lat, courier.ts, nowMs);
      glides.set(partnerId, glide);
      return glide;
    },
    /**
     * After a `snapshot` or `delta` was applied to `entries` (partner id -> { courier, coordinates }): each
     * courier it brought glides to its newest fix, and its coordinates (which the store just set to that fix)
     * go back to where its marker is drawn, so that they always say where the marker is.
     */
    retargetFrame(entries, frame, nowMs) {
      const ids = frame.type === "snapshot" ? [...entries.keys()] : (frame.couriers || []).map((c) => c && c.id);
      for (const partnerId of ids) {
        const entry = entries.get(partnerId);
        if (entry === undefined) continue;
        const [lon, lat] = positionAt(this.retarget(partnerId, entry.courier, nowMs), nowMs);
        entry.coordinates[0] = lon;
        entry.coordinates[1] = lat;
      }
    },
    stop(entries) {
      glides.clear();
      for (const entry of entries.values()) {
        entry.coordinates[0] = entry.courier.lon;
        entry.coordinates[1] = entry.courier.lat;
      }
    },
    /**
     * Move every gliding marker of `entries` (partner id -> store entry) to where it is at `nowMs`. Runs for
     * every marker up to 30 times a second, so it allocates nothing: positionAt's rule, written in place.
     */
    step(entries, nowMs) {
      let moving = false;
      for (const [partnerId, glide] of glides) {
        const entry = entries.get(partnerId);
        if (entry === undefined) {
          glides.delete(partnerId); // left the view or expired
          continue;
        }
        const coordinates = entry.coordinates;
        const progress = glide.durationMs > 0 ? (nowMs - glide.startMs) / glide.durationMs : 1;
        if (progress < 1) {
          const done = progress > 0 ? progress : 0;
          coordinates[0] = glide.from[0] + (glide.to[0] - glide.from[0]) * done;
          coordinates[1] = glide.from[1] + (glide.to[1] - glide.from[1]) * done;
          moving = true;
        } else {
          coordinates[0] = glide.to[0];
          coordinates[1] = glide.to[1];
        }
      }
      return moving;
    },
    /** Where a courier's marker is drawn now, or null when it has no glide. */
    drawnAt(partnerId, nowMs) {
      const glide = glides.get(partnerId);
      return glide === undefined ? null : positionAt(glide, nowMs);
    },
    clear() {
      glides.clear();
    },
  };
}
