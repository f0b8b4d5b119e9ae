// What the page does with each answer of the gateway that is not data: an HTTP status from /api/track, a
// close of /ws/track. Pure, so the rules are tested in node (frontend/test/track-outcome.test.js).
//
// - Refused (403 invalid link, 410 expired or revoked; the socket closed with 1008 and the gateway's reason,
//   at connect or later, when the link expires or is revoked while the page is open): a clear message, the
//   map and card emptied, no retry. Retrying could not help and the page must stop showing the order.
// - Delivered (the socket closed 1000 with reason "delivered", after the order frame saying so): stop, no
//   retry, no position.
// - Anything else (network down, 5xx, 429, the gateway restarting: 1001, 1006, 1012, 1013...): retry with
//   backoff and show "reconnecting".

import { WS_1000_NORMAL_CLOSURE, WS_1008_POLICY_VIOLATION } from "../connection.js";

/** The close reason of /ws/track after the delivered order frame. */
export const DELIVERED_REASON = "delivered";

/** The gateway's fixed refusal texts (HTTP `error` and close reason), and what the customer reads for each. */
export const REFUSALS = Object.freeze({
  "invalid tracking link": Object.freeze({
    title: "This tracking link is not valid",
    detail: "Check that the whole link was copied, or ask the shop for a new one.",
  }),
  "tracking link expired": Object.freeze({
    title: "This tracking link has expired",
    detail: "Tracking links work for a few hours after the order. Ask the shop if you still need one.",
  }),
  "tracking link revoked": Object.freeze({
    title: "This tracking link is no longer active",
    detail: "The shop has turned this link off. Ask them for a new one if you still need it.",
  }),
});
const UNKNOWN_REFUSAL = Object.freeze({
  title: "This order cannot be shown",
  detail: "The link was refused. Ask the shop for a new one.",
});

/** The message for a refusal reason (the gateway's text), or a generic one for a reason it does not know. */
export function refusalMessage(reason) {
  return Object.hasOwn(REFUSALS, reason) ? REFUSALS[reason] : UNKNOWN_REFUSAL;
}

/** The reason to assume when a refusal arrives without the contract's text. */
function reasonForStatus(status) {
  return status === 403 ? "invalid tracking link" : "tracking link expired";
}

/**
 * The outcome of GET /api/track/<token>: { kind: "ok" } | { kind: "refused", reason } | { kind: "retry" }.
 * `status` 0 is a network failure; `body` the parsed JSON or null.
 */
export function httpOutcome(status, body) {
  if (status === 200) return { kind: "ok" };
  if (status === 403 || status === 410 || status === 404) {
    const error = body !== null && typeof body === "object" ? body.error : undefined;
    const reason = Object.hasOwn(REFUSALS, error) ? error : status === 404 ? "invalid tracking link" : reasonForStatus(status);
    return { kind: "refused", reason };
  }
  return { kind: "retry" };
}

/** The outcome of a close of /ws/track: { kind: "delivered" } | { kind: "refused", reason } | { kind: "retry" }. */
export function closeOutcome(code, reason) {
  if (code === WS_1000_NORMAL_CLOSURE && reason === DELIVERED_REASON) return { kind: "delivered" };
  if (code === WS_1008_POLICY_VIOLATION) return { kind: "refused", reason: reason || "" };
  return { kind: "retry" };
}
