// The tracking page's WebSocket (/ws/track/<token>): the live map's reconnecting socket (connection.js:
// backoff with jitter, keepalive, a watchdog for a silent socket) with the tracking page's close rules
// (outcome.js): delivered and refused end it for good, anything else is retried.

import { createConnection } from "../connection.js";
import { DEFAULT_SUBPROTOCOL } from "../access.js";
import { closeOutcome } from "./outcome.js";

// Client messages on /ws/track are ignored by the gateway; the keepalive ping only keeps proxies and NATs from
// dropping an idle socket. A courier standing still sends no frames, so silence counts as a dead socket only
// after a minute (the page then reconnects and gets the order and the courier again).
export const KEEPALIVE_MS = 20_000;
export const SILENCE_MS = 60_000;

/**
 * Open /ws/track at `url`. onMessage(text, receivedAtMs) per frame; onEnd(outcome) once, when the gateway
 * ended it ({kind: "delivered"} or {kind: "refused", reason}); onStateChange(status) as connection.js says.
 * `inject`: WebSocketImpl, timers, now, random for tests. Returns connection.js's handle.
 */
export function openTrackSocket({ url, onMessage, onEnd, onStateChange = () => {}, inject = {} }) {
  return createConnection({
    url,
    protocols: () => [DEFAULT_SUBPROTOCOL],
    keepaliveMs: KEEPALIVE_MS,
    silenceMs: SILENCE_MS,
    isRefusal: (code, reason) => closeOutcome(code, reason).kind !== "retry",
    onRefused: (code, reason) => onEnd(closeOutcome(code, reason)),
    onMessage,
    onStateChange,
    ...inject,
  });
}
