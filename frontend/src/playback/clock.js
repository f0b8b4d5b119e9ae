// The playback clock: where in the window playback is, and how fast it moves. Pure: the page calls `advance`
// with the wall time elapsed since the last animation frame, and draws what `t` says.
//
// At speed S a window of W ms plays in W / S ms of wall time, whatever the frame rate: `advance` moves `t` by
// elapsed × S and stops at the window's end.

export const SPEEDS = Object.freeze([1, 2, 5, 10, 30, 60]);

/** A paused clock at the start of [from, to] (epoch ms). */
export function createClock({ from, to, speed = 1 }) {
  if (!(Number.isFinite(from) && Number.isFinite(to) && from <= to)) throw new RangeError("a window needs from <= to");
  return { from, to, t: from, speed: checkedSpeed(speed), playing: false };
}

function checkedSpeed(speed) {
  if (!(Number.isFinite(speed) && speed > 0)) throw new RangeError(`a speed must be a positive number, got ${speed}`);
  return speed;
}

/** Start playing; from the window's start again when it had reached its end. */
export function play(clock) {
  if (clock.t >= clock.to) clock.t = clock.from;
  clock.playing = true;
  return clock;
}

export function pause(clock) {
  clock.playing = false;
  return clock;
}

export function setSpeed(clock, speed) {
  clock.speed = checkedSpeed(speed);
  return clock;
}

/** Jump to time `t`, kept within the window. */
export function seek(clock, t) {
  clock.t = Math.min(clock.to, Math.max(clock.from, Number.isFinite(t) ? t : clock.from));
  return clock;
}

/** Move a playing clock on by `elapsedMs` of wall time; at the window's end it stops. Returns `t`. */
export function advance(clock, elapsedMs) {
  if (!clock.playing || !(elapsedMs > 0)) return clock.t;
  clock.t = Math.min(clock.to, clock.t + elapsedMs * clock.speed);
  if (clock.t >= clock.to) clock.playing = false;
  return clock.t;
}

export function ended(clock) {
  return clock.t >= clock.to;
}

/** How long the whole window takes to play at the clock's speed, in ms of wall time. */
export function playbackDurationMs(clock) {
  return (clock.to - clock.from) / clock.speed;
}

/** Where `t` is in the window, 0..1 (0 for an empty window). */
export function fraction(clock) {
  const span = clock.to - clock.from;
  return span > 0 ? (clock.t - clock.from) / span : 0;
}

/** The time at `value` of a slider running from 0 to `steps`. */
export function timeAtFraction(clock, value, steps) {
  return clock.from + ((clock.to - clock.from) * value) / steps;
}
