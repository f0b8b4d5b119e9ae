// The WebSocket to the gateway, kept open all day: reconnect with exponential backoff and jitter, a
// keepalive ping, and a watchdog that treats a silent socket as dead (a half-open TCP connection after a
// laptop sleeps or a proxy drops it never fires `close` by itself).
//
// State machine: connecting -> open -> closed (retry scheduled) -> connecting ... The backoff attempt counter
// resets only once the server has sent its first frame on a connection, so a gateway that accepts and then
// immediately closes still gets backed off from. A close the page's `isRefusal` recognises (the gateway refusing
// its viewer token) is not retried: the state becomes "refused" until reconnectNow(), once there is a new token.

import { backoffDelayMs, pingMessage } from "./protocol.js";

// Close codes the gateway uses (RFC 6455 numbers, named as Starlette's `status` module names them).
export const WS_1000_NORMAL_CLOSURE = 1000;
export const WS_1003_UNSUPPORTED_DATA = 1003;
export const WS_1008_POLICY_VIOLATION = 1008;
export const WS_1013_TRY_AGAIN_LATER = 1013;
/** Application close code (4000-4999 are private) for "no frame from the server for too long". */
export const WS_4000_SILENT_SERVER = 4000;

const CLOSE_REASONS = {
  1001: "the server is restarting",
  1006: "connection lost",
  1011: "the server hit an error",
  [WS_1003_UNSUPPORTED_DATA]: "the server could not parse a message from this page",
  [WS_1008_POLICY_VIOLATION]: "the server rejected a message from this page",
  [WS_1013_TRY_AGAIN_LATER]: "this page fell behind the live feed",
  [WS_4000_SILENT_SERVER]: "no data from the server",
};

export function describeClose(code, reason) {
  const known = CLOSE_REASONS[code];
  if (known && reason) return `${known} (${reason})`;
  return known || reason || `connection closed (code ${code})`;
}

/**
 * ws:// or wss:// URL of `path` resolved against the page's own URL (relative, so the page also works when
 * the gateway is mounted under a path prefix): https pages get wss.
 */
export function webSocketUrl(pageHref, path = "ws") {
  const url = new URL(path, pageHref);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.href;
}

/**
 * Open and keep open a WebSocket.
 *
 * options: url; protocols() -> the subprotocols to offer on each attempt (read then, so a new token counts);
 * onOpen(send); onMessage(text, receivedAtMs); onStateChange({state, retryAtMs, attempt, lastError});
 * isRefusal(code, reason) -> whether a close means "access refused" (then onRefused(code, reason), no retry);
 * WebSocketImpl, timers ({setTimeout, clearTimeout, setInterval, clearInterval}), now() and random() are
 * injectable for tests. keepaliveMs: how often to ping; silenceMs: how long without any frame means dead.
 */
export function createConnection(options) {
  const {
    url,
    protocols = () => undefined,
    isRefusal = () => false,
    onRefused = () => {},
    onOpen = () => {},
    onMessage = () => {},
    onStateChange = () => {},
    WebSocketImpl = globalThis.WebSocket,
    timers = globalThis,
    now = () => Date.now(),
    random = Math.random,
    keepaliveMs = 10_000,
    silenceMs = 15_000,
  } = options;

  let socket = null;
  let attempt = 0;
  let retryTimer = null;
  let keepaliveTimer = null;
  let lastFrameAtMs = 0;
  let stopped = false;
  const status = { state: "connecting", retryAtMs: null, attempt: 0, lastError: null };

  function setState(patch) {
    Object.assign(status, patch);
    onStateChange({ ...status });
  }

  function send(text) {
    if (socket !== null && socket.readyState === 1) {
      socket.send(text);
      return true;
    }
    return false;
  }

  function stopTimers() {
    if (keepaliveTimer !== null) timers.clearInterval(keepaliveTimer);
    keepaliveTimer = null;
    if (retryTimer !== null) timers.clearTimeout(retryTimer);
    retryTimer = null;
  }

  function connect() {
    stopTimers();
    if (stopped) return;
    setState({ state: "connecting", retryAtMs: null, attempt });
    let opened;
    try {
      const offered = protocols();
      opened = offered === undefined ? new WebSocketImpl(url) : new WebSocketImpl(url, offered);
    } catch (error) {
      scheduleRetry(String(error && error.message ? error.message : error));
      return;
    }
    socket = opened;
    let gotFirstFrame = false;

    opened.onopen = () => {
      if (socket !== opened) return;
      lastFrameAtMs = now();
      setState({ state: "open", retryAtMs: null, lastError: null });
      keepaliveTimer = timers.setInterval(() => {
        if (now() - lastFrameAtMs > silenceMs) {
          opened.close(WS_4000_SILENT_SERVER, "silent server");
          handleClose(opened, WS_4000_SILENT_SERVER, "");
          return;
        }
        send(pingMessage());
      }, keepaliveMs);
      onOpen(send);
    };
    opened.onmessage = (event) => {
      if (socket !== opened) return;
      lastFrameAtMs = now();
      if (!gotFirstFrame) {
        gotFirstFrame = true;
        attempt = 0;
      }
      onMessage(event.data, lastFrameAtMs);
    };
    opened.onclose = (event) => handleClose(opened, event.code, event.reason);
    // `error` is always followed by `close`; the close event carries what little the browser tells.
    opened.onerror = () => {};
  }

  function handleClose(closedSocket, code, reason) {
    if (socket !== closedSocket) return; // a socket we already gave up on
    socket = null;
    closedSocket.onopen = closedSocket.onmessage = closedSocket.onclose = closedSocket.onerror = null;
    if (isRefusal(code, reason)) {
      stopTimers();
      setState({ state: "refused", retryAtMs: null, lastError: describeClose(code, reason) });
      onRefused(code, reason);
      return;
    }
    scheduleRetry(code === WS_1000_NORMAL_CLOSURE ? null : describeClose(code, reason));
  }

  function scheduleRetry(lastError) {
    stopTimers();
    if (stopped) return;
    const delayMs = backoffDelayMs(attempt, random);
    attempt += 1;
    setState({ state: "closed", retryAtMs: now() + delayMs, attempt, lastError });
    retryTimer = timers.setTimeout(connect, delayMs);
  }

  connect();

  return {
    send,
    status: () => ({ ...status }),
    /** Skip the rest of the backoff wait (the "Reconnect now" button), or try again after a refusal. */
    reconnectNow() {
      if (status.state === "closed" || status.state === "refused") connect();
    },
    /** Drop the current socket as if the network had (tests and the page's own watchdogs). */
    drop() {
      const current = socket;
      if (current !== null) {
        current.close(WS_1000_NORMAL_CLOSURE, "client drop");
        handleClose(current, WS_4000_SILENT_SERVER, "dropped by client");
      }
    },
    stop() {
      stopped = true;
      stopTimers();
      const current = socket;
      socket = null;
      if (current !== null) current.close(WS_1000_NORMAL_CLOSURE, "page closed");
      setState({ state: "closed", retryAtMs: null });
    },
  };
}
