// The "History" control of the map page: pick a courier (or the whole fleet) and a window, load its history,
// and play it back on the map with a time slider, play/pause and a speed from 1× to 60×.
//
// A courier's playback draws its marker moving along the route ridden (every fix history keeps, interpolated
// in between), the route behind it, and its rejected pings as ghosts once the clock passes them. The fleet's
// draws every courier at once (one fix per step slot, interpolated). While a playback is loaded the live
// markers are hidden; live frames keep arriving but move nothing drawn here. "Live" closes it.
//
// Per animation frame: advance the clock by the wall time elapsed × speed, find each drawn courier's
// position (track.js: O(1) per courier while playing), and set the sources that changed. `frameMs` records
// the main-thread time of each such frame.

import {
  SPEEDS,
  advance,
  createClock,
  ended,
  fraction,
  pause,
  play,
  seek,
  setSpeed,
  timeAtFraction,
} from "./clock.js";
import { createFleet, fleetAt, positionAt, routeUpTo, trackBounds, trackFromPoints } from "./track.js";
import { ghostCollection, ghostListUrl, ghostsInWindow, ghostsPassed } from "./ghosts.js";
import { clockLabel, defaultWindow, fleetUrl, readForm, toLocalInput, trailUrl } from "./query.js";
import {
  MARKER_LAYER_ID,
  addPlaybackLayers,
  clearPlayback,
  liveShown,
  setFleet,
  setGhosts,
  setMarker,
  setRoute,
  showLive,
} from "./layers.js";

const SLIDER_STEPS = 1000;
const SAMPLES_KEPT = 2000;
const DETAIL_FETCHES = 6; // ghost details fetched at a time
// A courier silent for longer is not interpolated across the silence (it waits at its last fix): one minute
// for a courier's own fixes, three step slots for the fleet's.
const COURIER_GAP_MS = 60_000;
const FLEET_GAP_SLOTS = 3;

function element(root, selector) {
  const found = root.querySelector(selector);
  if (found === null) throw new Error(`the history control has no ${selector}`);
  return found;
}

function bindControls(root) {
  return {
    form: element(root, "form"),
    courier: element(root, '[name="courier"]'),
    from: element(root, '[name="from"]'),
    to: element(root, '[name="to"]'),
    play: element(root, '[data-action="playback-play"]'),
    slider: element(root, '[data-field="playback-time"]'),
    clock: element(root, '[data-field="playback-clock"]'),
    speed: element(root, '[data-field="playback-speed"]'),
    status: element(root, '[data-field="playback-status"]'),
    close: element(root, '[data-action="playback-close"]'),
  };
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function problem(response, what) {
  if (response.status === 400 && response.body && response.body.error) return response.body.error;
  if (response.status === 401) return "The viewer token was refused.";
  if (response.status === 404) return `No courier with id ${what}.`;
  return `Could not load the history of ${what}; try again.`;
}

/**
 * Wire the history control in `root` (the playback section) to `map`. `toggle` opens and closes it, and
 * `courierButton` (the live panel's) opens it for the selected courier; `fetchJson(path)` resolves
 * `{ ok, status, body }`; `selectedId()` is the courier selected on the live map (the form starts with it);
 * `onLive()` is called when the live markers show again. Returns `{ open, close, active, testHooks }`.
 */
export function createPlayback({
  map,
  root,
  toggle,
  courierButton = null,
  fetchJson,
  selectedId = () => null,
  onLive = () => {},
  now = () => Date.now(),
}) {
  const ui = bindControls(root);
  const frameMs = [];
  const drawn = []; // [t, lon, lat] of the courier's marker at each frame, for tests
  const fleetCoordinates = [];
  const scratch = { index: -1, lat: 0, lon: 0 };
  let loaded = null; // the history being played: see load()
  let frameRequest = null;
  let lastFrameAt = null;
  let loading = 0; // the latest load; an older one finishing late is dropped

  for (const speed of SPEEDS) {
    const option = root.ownerDocument.createElement("option");
    option.value = String(speed);
    option.textContent = `${speed}×`;
    ui.speed.append(option);
  }
  ui.speed.value = "10";

  function isOpen() {
    return !root.hidden;
  }

  function open(partnerId = selectedId()) {
    root.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    if (partnerId) ui.courier.value = partnerId;
    if (!ui.from.value || !ui.to.value) {
      const span = defaultWindow(now());
      ui.from.value = toLocalInput(span.from);
      ui.to.value = toLocalInput(span.to);
    }
    ui.courier.focus({ preventScroll: true });
  }

  function close() {
    unload();
    root.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    setText(ui.status, "");
  }

  function unload() {
    loading += 1;
    stopFrames();
    if (loaded !== null) {
      clearPlayback(map);
      showLive(map, true);
      onLive();
    }
    loaded = null;
    setControlsEnabled(false);
  }

  function setControlsEnabled(enabled) {
    ui.play.disabled = !enabled;
    ui.slider.disabled = !enabled;
    renderButton();
  }

  function renderButton() {
    const playing = loaded !== null && loaded.clock.playing;
    setText(ui.play, playing ? "Pause" : "Play");
    ui.play.setAttribute("aria-pressed", String(playing));
  }

  async function load(event) {
    event.preventDefault();
    const wanted = readForm({ courier: ui.courier.value, from: ui.from.value, to: ui.to.value });
    if (wanted.error) {
      setText(ui.status, wanted.error);
      return;
    }
    unload();
    const ticket = loading;
    setText(ui.status, "Loading…");
    const next = wanted.partnerId === null ? await loadFleet(wanted) : await loadCourier(wanted);
    if (ticket !== loading) return; // closed or loaded again meanwhile
    if (typeof next === "string") {
      setText(ui.status, next);
      return;
    }
    loaded = { ...next, clock: createClock({ from: wanted.from, to: wanted.to, speed: Number(ui.speed.value) }) };
    addPlaybackLayers(map);
    showLive(map, false);
    setControlsEnabled(true);
    setText(ui.status, next.summary);
    if (loaded.track) {
      // the route and its ghosts, clear of the control along the bottom
      const [[west, south], [east, north]] = trackBounds(loaded.track);
      const lons = [west, east, ...loaded.ghosts.map((ghost) => ghost.lon)];
      const lats = [south, north, ...loaded.ghosts.map((ghost) => ghost.lat)];
      const bounds = [
        [Math.min(...lons), Math.min(...lats)],
        [Math.max(...lons), Math.max(...lats)],
      ];
      map.fitBounds(bounds, { padding: { top: 60, right: 60, bottom: root.offsetHeight + 60, left: 60 }, maxZoom: 16, duration: 0 });
    }
    render();
  }

  async function loadCourier({ partnerId, from, to }) {
    const [trail, listed] = await Promise.all([
      fetchJson(trailUrl(partnerId, from, to)),
      fetchJson(ghostListUrl(partnerId, from, to)),
    ]);
    if (!trail.ok || !trail.body) return problem(trail, partnerId);
    const track = trackFromPoints(trail.body.points);
    if (track.t.length === 0) return `No history of ${partnerId} between those times.`;
    const rows = listed.ok && listed.body && Array.isArray(listed.body.items) ? listed.body.items : [];
    const ghosts = ghostsInWindow(rows, await ghostDetails(rows), from, to);
    const coarse = trail.body.downsampled_before;
    const resolution =
      coarse === null || coarse === undefined
        ? "every fix"
        : `one fix per ${Math.round(trail.body.step_ms / 1000)} s before ${clockLabel(coarse)}`;
    const rejected = ghosts.length === 1 ? "1 rejected ping" : `${ghosts.length} rejected pings`;
    return {
      mode: "courier",
      partnerId,
      track,
      ghosts,
      hint: -1,
      ghostsShown: -1,
      route: { fixes: [], upTo: -1 },
      position: null,
      summary: `${partnerId}: ${track.t.length} fixes (${resolution}), ${rejected}.`,
    };
  }

  async function ghostDetails(rows) {
    const details = new Map();
    const wanted = rows.filter((row) => row && Number.isFinite(row.lat) && Number.isFinite(row.lon));
    for (let start = 0; start < wanted.length; start += DETAIL_FETCHES) {
      const batch = wanted.slice(start, start + DETAIL_FETCHES);
      const answers = await Promise.all(batch.map((row) => fetchJson(`api/dlq/${encodeURIComponent(row.id)}`)));
      batch.forEach((row, index) => {
        if (answers[index].ok) details.set(row.id, answers[index].body);
      });
    }
    return details;
  }

  async function loadFleet({ from, to }) {
    const answer = await fetchJson(fleetUrl(from, to));
    if (!answer.ok || !answer.body) return problem(answer, "the fleet");
    const fleet = createFleet(answer.body);
    if (fleet.ids.length === 0) return "No courier has history between those times.";
    const step = Number(answer.body.step_ms) || 30_000;
    return {
      mode: "fleet",
      fleet,
      maxGapMs: FLEET_GAP_SLOTS * step,
      summary: `${fleet.ids.length} couriers, ${fleet.points} fixes (one per ${Math.round(step / 1000)} s).`,
    };
  }

  // --- drawing ------------------------------------------------------------------------------------------

  function render() {
    if (loaded === null) return;
    const startedAt = performance.now();
    const t = loaded.clock.t;
    if (loaded.mode === "courier") {
      const position = positionAt(loaded.track, t, { hint: loaded.hint, maxGapMs: COURIER_GAP_MS, out: scratch });
      loaded.hint = position === null ? -1 : position.index;
      loaded.position = position === null ? null : { lon: position.lon, lat: position.lat };
      setMarker(map, position);
      setRoute(map, routeUpTo(loaded.track, position, loaded.route));
      const passed = ghostsPassed(loaded.ghosts, t);
      if (passed !== loaded.ghostsShown) {
        setGhosts(map, ghostCollection(loaded.ghosts, passed));
        loaded.ghostsShown = passed;
      }
      if (position !== null) keep(drawn, [t, position.lon, position.lat]);
    } else {
      setFleet(map, fleetAt(loaded.fleet, t, loaded.maxGapMs, fleetCoordinates));
    }
    keep(frameMs, performance.now() - startedAt);
    const value = String(Math.round(fraction(loaded.clock) * SLIDER_STEPS));
    if (ui.slider.value !== value && root.ownerDocument.activeElement !== ui.slider) ui.slider.value = value;
    setText(ui.clock, clockLabel(t));
  }

  function keep(samples, sample) {
    samples.push(sample);
    if (samples.length > SAMPLES_KEPT) samples.splice(0, samples.length - SAMPLES_KEPT);
  }

  function frame(timestamp) {
    frameRequest = null;
    if (loaded === null) return;
    advance(loaded.clock, lastFrameAt === null ? 0 : timestamp - lastFrameAt);
    lastFrameAt = timestamp;
    render();
    if (loaded.clock.playing) frameRequest = requestAnimationFrame(frame);
    else stopFrames();
  }

  function startFrames() {
    lastFrameAt = null;
    if (frameRequest === null) frameRequest = requestAnimationFrame(frame);
    renderButton();
  }

  function stopFrames() {
    if (frameRequest !== null) cancelAnimationFrame(frameRequest);
    frameRequest = null;
    lastFrameAt = null;
    renderButton();
  }

  // --- controls -----------------------------------------------------------------------------------------

  toggle.disabled = false;
  if (courierButton !== null) courierButton.addEventListener("click", () => open(selectedId()));
  ui.form.addEventListener("submit", load);
  ui.close.addEventListener("click", close);
  toggle.addEventListener("click", () => (isOpen() ? close() : open()));
  ui.play.addEventListener("click", () => {
    if (loaded === null) return;
    if (loaded.clock.playing) {
      pause(loaded.clock);
      stopFrames();
    } else {
      play(loaded.clock);
      startFrames();
    }
  });
  ui.speed.addEventListener("change", () => {
    if (loaded !== null) setSpeed(loaded.clock, Number(ui.speed.value));
  });
  ui.slider.addEventListener("input", () => {
    if (loaded === null) return;
    seek(loaded.clock, timeAtFraction(loaded.clock, Number(ui.slider.value), SLIDER_STEPS));
    render();
  });
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close();
      toggle.focus({ preventScroll: true });
    }
  });

  const testHooks = {
    state() {
      if (loaded === null) return { active: false, open: isOpen(), status: ui.status.textContent };
      const clock = loaded.clock;
      return {
        active: true,
        open: isOpen(),
        mode: loaded.mode,
        playing: clock.playing,
        ended: ended(clock),
        t: clock.t,
        from: clock.from,
        to: clock.to,
        speed: clock.speed,
        fixes: loaded.track ? loaded.track.t.length : loaded.fleet.points,
        couriers: loaded.fleet ? loaded.fleet.ids.length : 1,
        ghosts: loaded.ghosts ? loaded.ghosts.length : 0,
        ghostsShown: loaded.ghostsShown ?? 0,
        status: ui.status.textContent,
      };
    },
    /** The courier's marker as drawn last ([lon, lat]), or null. */
    marker: () => (loaded && loaded.position ? [loaded.position.lon, loaded.position.lat] : null),
    drawn,
    frameMs,
    /** Jump the clock to `t` and draw (the slider's job, to the millisecond). */
    seek(t) {
      if (loaded === null) return;
      seek(loaded.clock, t);
      render();
    },
    /** Ask the map for one more frame (the benchmark's baseline: what drawing the map costs at all). */
    repaint: () => map.triggerRepaint(),
    /** Whether the live markers are shown (they are hidden while a playback is loaded). */
    liveVisible: () => liveShown(map),
    /** Whether the map renders the played-back marker within `radiusPx` of [lon, lat]. */
    markerRenderedAt(lon, lat, radiusPx = 3) {
      const point = map.project([lon, lat]);
      const box = [
        [point.x - radiusPx, point.y - radiusPx],
        [point.x + radiusPx, point.y + radiusPx],
      ];
      return map.queryRenderedFeatures(box, { layers: [MARKER_LAYER_ID] }).length > 0;
    },
  };

  return { open, close, active: () => loaded !== null, testHooks };
}
