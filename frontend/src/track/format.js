// The words and numbers on the tracking page's card: ETA, distance and how old the position is. Pure.
//
// The ETA is the gateway's (courier `eta_s`): the straight-line distance left (to the pickup point before
// pickup, to the drop-off after) divided by the courier's recent speed. Streets are longer than straight
// lines and couriers stop, so it is shown rounded to whole minutes, worded "about", and labelled an estimate;
// with no recent speed (a courier standing still, or just started) there is none rather than a wrong one.

import { STATE_DETAILS, STATE_LABELS } from "./state.js";

export const ETA_EXPLANATION =
  "Estimate: the straight-line distance left divided by the courier's recent speed. Traffic and stops can change it.";

/** "about 6 min" / "less than a minute" / "about 1 h 20 min", or null when there is no estimate. */
export function etaText(etaS) {
  if (!Number.isFinite(etaS) || etaS < 0) return null;
  if (etaS < 60) return "less than a minute";
  const minutes = Math.round(etaS / 60);
  if (minutes < 60) return `about ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `about ${hours} h` : `about ${hours} h ${rest} min`;
}

/** "350 m" (to 10 m) under a kilometre, "1.2 km" under ten, "12 km" beyond; null when unknown. */
export function distanceText(metres) {
  if (!Number.isFinite(metres) || metres < 0) return null;
  if (metres < 995) return `${Math.round(metres / 10) * 10} m`;
  if (metres < 9_950) return `${(metres / 1000).toFixed(1)} km`;
  return `${Math.round(metres / 1000)} km`;
}

/**
 * How old the courier's fix is at `nowMs` (local clock), in ms: the gateway's own difference between sending
 * and the fix (`server_ts - ts`, one clock's reading) plus the time since this page received it (the local
 * clock's), so a phone whose clock is off by minutes still shows the right age. Without `server_ts`, the fix
 * time against the local clock.
 */
export function fixAgeMs(courier, receivedAtMs, nowMs) {
  if (courier === null) return null;
  if (Number.isFinite(courier.serverTs) && Number.isFinite(receivedAtMs)) {
    return Math.max(0, courier.serverTs - courier.ts) + Math.max(0, nowMs - receivedAtMs);
  }
  return Math.max(0, nowMs - courier.ts);
}

/** "just now" / "12 s ago" / "3 min ago" / "over an hour ago". */
export function ageText(ms) {
  if (!Number.isFinite(ms)) return null;
  if (ms < 5_000) return "just now";
  if (ms < 60_000) return `${Math.floor(ms / 1000)} s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
  return "over an hour ago";
}

/** What the ETA and distance are measured to, by state. */
export function targetText(state) {
  return state === "to_pickup" ? "to the restaurant" : "to you";
}

/** Everything the card shows for a track (state.js) at `nowMs`, as strings (null: leave the field empty). */
export function cardModel(track, nowMs) {
  const order = track.order;
  if (order === null) {
    return { state: null, headline: "Loading your order…", detail: "", eta: null, etaTarget: null, distance: null, age: null, coarse: false };
  }
  const courier = track.courier;
  const target = targetText(order.state);
  const distance = courier ? distanceText(courier.distanceM) : null;
  const age = courier ? ageText(fixAgeMs(courier, track.receivedAtMs, nowMs)) : null;
  const done = order.state === "delivered";
  return {
    state: order.state,
    headline: STATE_LABELS[order.state],
    detail: STATE_DETAILS[order.state],
    eta: done || !courier ? null : etaText(courier.etaS),
    etaTarget: target,
    distance: done || distance === null ? null : `${distance} ${target}`,
    age: done || age === null ? null : `updated ${age}`,
    coarse: !done && Boolean(courier && courier.coarse),
  };
}
